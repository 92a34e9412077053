"""A llama.cpp context that decodes several sequences per call, through the low-level API.

llama-cpp-python's ``Llama`` drives one sequence per context; continuous batching needs the C
API underneath it: a context created with ``n_seq_max`` sequences over one unified KV cache,
a ``llama_batch`` whose tokens name their sequence and position, ``llama_sampler_sample`` on
each sequence's own sampler chain at its output index (greedy sequences take the argmax of the
logits row instead), and ``llama_memory_seq_rm`` to free a sequence's cells the moment it
leaves. Every call must come from the engine's one worker thread
(docs/architecture.md, "Why every llama.cpp call runs on one thread").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from polyllm.inference.scheduler import Entry

# Sampling exactly as llama-cpp-python's ``Llama.generate`` does with its defaults, so a seeded
# request gives the same text with or without batching (given the same logits).
TOP_K = 40
MIN_P = 0.05
TYPICAL_P = 1.0


class DecodeError(RuntimeError):
    """``llama_decode`` failed; the KV cache is as it was before the call (or the step's
    sequences are removed by the caller)."""


class BatchDecoder:
    """``n_seq`` sequences in one llama.cpp context sharing ``n_ctx`` KV cells."""

    def __init__(self, llm: Any, *, n_ctx: int, n_seq: int, n_batch: int) -> None:
        """Create the context from the model ``llm`` (a ``Llama``) already holds; its threads,
        offload and attention settings are copied from that ``Llama``'s context."""
        import llama_cpp

        self._lib: Any = llama_cpp
        params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = n_batch  # one step = one graph evaluation
        params.n_seq_max = n_seq
        # One cell pool for all sequences. With a KV stream per sequence llama.cpp splits a
        # batch into one ubatch per run of consecutive sequence ids, losing the batching
        # whenever a sequence in the middle has left.
        params.kv_unified = True
        # Attention settings (flash attention) stay the serial engine's: a request that runs
        # alone then gets exactly the serial engine's text.
        self._ctx = llama_cpp.llama_init_from_model(llm.model, params)
        if self._ctx is None:
            raise DecodeError(f"llama.cpp could not create a context of {n_ctx} cells")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._n_batch = n_batch
        self._samplers: dict[int, Any] = {}
        """Sampler chains of the sequences that sample; a greedy sequence has none."""
        self.vocab = llm._model.vocab  # end-of-generation tokens are only exposed on the vocab
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)

    def start(self, seq_id: int, *, temp: float, top_p: float, seed: int) -> None:
        """Give ``seq_id`` a fresh sampler chain, or none at ``temp`` 0 (greedy)."""
        self.finish(seq_id)
        if temp <= 0.0:
            return
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        for part in (
            lib.llama_sampler_init_top_k(TOP_K),
            lib.llama_sampler_init_typical(TYPICAL_P, 1),
            lib.llama_sampler_init_top_p(top_p, 1),
            lib.llama_sampler_init_min_p(MIN_P, 1),
            lib.llama_sampler_init_temp(temp),
            lib.llama_sampler_init_dist(seed),
        ):
            lib.llama_sampler_chain_add(chain, part)  # the chain owns (and frees) its parts
        self._samplers[seq_id] = chain

    def decode(self, entries: Sequence[Entry]) -> None:
        """Evaluate one batch; entries with ``logits`` can then be sampled by their index."""
        if not 0 < len(entries) <= self._n_batch:
            raise ValueError(f"a batch holds 1 to {self._n_batch} tokens, not {len(entries)}")
        batch = self._batch
        for i, entry in enumerate(entries):
            batch.token[i] = entry.token
            batch.pos[i] = entry.pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = entry.seq_id
            batch.logits[i] = entry.logits
        batch.n_tokens = len(entries)
        code = self._lib.llama_decode(self._ctx, batch)
        if code != 0:
            raise DecodeError(f"llama_decode returned {code}")

    def sample(self, seq_id: int, index: int) -> int:
        """Sample ``seq_id``'s next token from the logits of batch entry ``index``.

        Greedy is the argmax of the logits row, read in place: the same token as llama.cpp's
        greedy sampler (the first of equal maxima), without the copy of the whole vocabulary
        into a candidate array that every ``llama_sampler_sample`` makes (~0.25 ms per token
        for m3's 152k tokens, 1 ms per step at batch 4; more for m2's 262k)."""
        chain = self._samplers.get(seq_id)
        if chain is not None:
            return int(self._lib.llama_sampler_sample(chain, self._ctx, index))
        row = self._lib.llama_get_logits_ith(self._ctx, index)
        return int(np.ctypeslib.as_array(row, shape=(self._n_vocab,)).argmax())

    def is_end(self, token: int) -> bool:
        """True for an end-of-generation token (EOS, EOT, …)."""
        return bool(self._lib.llama_vocab_is_eog(self.vocab, token))

    def finish(self, seq_id: int) -> None:
        """Free ``seq_id``'s KV cells and sampler (harmless if it holds none)."""
        self._lib.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
        chain = self._samplers.pop(seq_id, None)
        if chain is not None:
            self._lib.llama_sampler_free(chain)

    def close(self) -> None:
        """Free the samplers, the batch and the context (before the model is freed)."""
        if self._ctx is None:
            return
        for chain in self._samplers.values():
            self._lib.llama_sampler_free(chain)
        self._samplers.clear()
        self._lib.llama_batch_free(self._batch)
        self._lib.llama_free(self._ctx)
        self._ctx = None
