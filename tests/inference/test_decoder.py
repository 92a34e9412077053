"""The batch decoder on the real m1 file: greedy is llama.cpp's own greedy sampler's choice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from polyllm.inference.decoder import BatchDecoder
from polyllm.inference.scheduler import Entry
from tests.integration.conftest import MODELS_DIR

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def llm() -> Iterator[Any]:
    from llama_cpp import Llama

    path = MODELS_DIR / "m1.gguf"
    if not path.is_file():
        pytest.fail("models/m1.gguf is missing: run `make test-models` (make test does it)")
    model = Llama(model_path=str(path), n_ctx=256, n_batch=8, n_threads=2, verbose=False)
    yield model
    model.close()


def test_greedy_takes_the_token_llama_cpps_greedy_sampler_takes(llm: Any) -> None:
    import llama_cpp

    decoder = BatchDecoder(llm, n_ctx=512, n_seq=2, n_batch=64)
    reference = llama_cpp.llama_sampler_init_greedy()
    prompts = [llm.tokenize(p) for p in (b"The sea is", b"def add(a, b):")]
    try:
        for seq_id in (0, 1):
            decoder.start(seq_id, temp=0.0, top_p=1.0, seed=0)
        entries = [
            Entry(seq_id, token, pos, logits=pos == len(tokens) - 1)
            for seq_id, tokens in enumerate(prompts)
            for pos, token in enumerate(tokens)
        ]
        chosen = []
        for _ in range(24):  # both sequences in every step, as the batching loop runs them
            decoder.decode(entries)
            outputs = [i for i, e in enumerate(entries) if e.logits]
            tokens = [decoder.sample(entries[i].seq_id, i) for i in outputs]
            expected = [llama_cpp.llama_sampler_sample(reference, decoder._ctx, i) for i in outputs]
            assert tokens == expected
            chosen.append(tokens)
            entries = [
                Entry(seq_id, token, len(prompts[seq_id]) + len(chosen) - 1, logits=True)
                for seq_id, token in enumerate(tokens)
            ]
        assert len({tuple(t) for t in chosen}) > 1  # the sequences moved on, not one token
    finally:
        llama_cpp.llama_sampler_free(reference)
        decoder.close()


def test_sampled_sequences_follow_their_seed(llm: Any) -> None:
    prompt = llm.tokenize(b"Once upon a time")

    def run(seed: int) -> list[int]:
        decoder = BatchDecoder(llm, n_ctx=256, n_seq=1, n_batch=32)
        try:
            decoder.start(0, temp=1.0, top_p=0.95, seed=seed)
            entries = [Entry(0, t, p, logits=p == len(prompt) - 1) for p, t in enumerate(prompt)]
            out: list[int] = []
            for _ in range(16):
                decoder.decode(entries)
                out.append(decoder.sample(0, len(entries) - 1))
                entries = [Entry(0, out[-1], len(prompt) + len(out) - 1, logits=True)]
            return out
        finally:
            decoder.close()

    assert run(7) == run(7)
    assert run(7) != run(8)
