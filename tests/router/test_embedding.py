"""The router's sentence embedder: the NumPy MiniLM equals sentence-transformers, and the static
table (what the router uses per request) keeps related prompts closer than unrelated ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from polyllm.models.embedder import EMBEDDER_DIR
from polyllm.router.embedding import MAX_TOKENS, Embedder, StaticEmbedder

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"

pytestmark = pytest.mark.skipif(
    not (EMBEDDER_DIR / "tokenizer.json").exists(),
    reason="no embedder in models/embedder: run `polyllm models embedder` (make test does)",
)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(EMBEDDER_DIR)


@pytest.fixture(scope="module")
def static() -> StaticEmbedder:
    return StaticEmbedder.load(EMBEDDER_DIR)


def test_numpy_minilm_matches_sentence_transformers(embedder: Embedder) -> None:
    # Vectors computed by sentence-transformers itself (scripts/reference_embeddings.py).
    reference = json.loads(REFERENCE.read_text())
    for text, vector in zip(reference["texts"], reference["vectors"], strict=True):
        ours = embedder.embed(text)
        assert ours.shape == (384,)
        assert np.abs(ours - np.array(vector)).max() < 1e-4, text


def test_long_inputs_are_cut_to_max_tokens(embedder: Embedder) -> None:
    assert len(embedder.tokens("word " * 1000)) == MAX_TOKENS


def test_static_embeddings_keep_related_prompts_closer(static: StaticEmbedder) -> None:
    code = static.embed("Write a Python function that reverses a linked list.")
    code2 = static.embed("Implement binary search in JavaScript and return the index.")
    capital = static.embed("What is the capital of France?")
    capital2 = static.embed("Which city is the capital of Germany?")
    assert float(code @ code2) > float(code @ capital)
    assert float(capital @ capital2) > float(capital @ code2)
    assert abs(float(np.linalg.norm(code)) - 1) < 1e-5


def test_empty_text_embeds_to_zeros(static: StaticEmbedder) -> None:
    assert not static.embed("").any()
