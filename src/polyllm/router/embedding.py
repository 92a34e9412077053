"""Sentence embeddings for routing: all-MiniLM-L6-v2 (a 6-layer BERT) run in plain NumPy.

The forward pass is ~40 lines of matrix algebra over the safetensors weights, so the router needs
neither PyTorch nor an ONNX runtime (a smaller image, ~100 MB of RSS). The result is the same as
sentence-transformers' (mean pooling over tokens, L2-normalised): tests compare it with vectors
that sentence-transformers computed. Prompts are cut to :data:`MAX_TOKENS` tokens, which keeps
the cost bounded (routing cues sit at the start of a prompt).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf
from threadpoolctl import threadpool_limits
from tokenizers import Tokenizer

__all__ = ["DIMENSIONS", "MAX_TOKENS", "Embedder", "load_safetensors"]

MAX_TOKENS = 128
DIMENSIONS = 384
_HEADS = 12
_EPS = 1e-12

Array = NDArray[np.float32]


def load_safetensors(path: Path) -> dict[str, Array]:
    """The float32 tensors of a safetensors file, as read-only arrays over a memory map."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    (header_len,) = struct.unpack("<Q", raw[:8].tobytes())
    header = json.loads(raw[8 : 8 + header_len].tobytes())
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        tensors[name] = raw[base + start : base + end].view(np.float32).reshape(info["shape"])
    return tensors


def _layer_norm(x: Array, weight: Array, bias: Array) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    out: Array = (x - mean) / np.sqrt(var + _EPS) * weight + bias
    return out


def _gelu(x: Array) -> Array:
    """BERT's exact GELU, x · Φ(x)."""
    out: Array = 0.5 * x * (1.0 + erf(x * np.float32(1 / math.sqrt(2.0))))
    return out


class Embedder:
    """all-MiniLM-L6-v2 from a directory holding ``model.safetensors`` and ``tokenizer.json``."""

    def __init__(self, directory: Path) -> None:
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        w = load_safetensors(directory / "model.safetensors")
        self._w = w
        self._layers = sum(1 for k in w if k.endswith("attention.self.query.weight"))
        # Q, K and V in one matrix: one matmul per layer instead of three.
        self._qkv = [
            (
                np.concatenate([w[f"{p}.{n}.weight"] for n in ("query", "key", "value")]).T.copy(),
                np.concatenate([w[f"{p}.{n}.bias"] for n in ("query", "key", "value")]),
            )
            for p in (f"encoder.layer.{i}.attention.self" for i in range(self._layers))
        ]
        self._dense = {k: v.T.copy() for k, v in w.items() if k.endswith("dense.weight")}

    def tokens(self, text: str) -> list[int]:
        """The token ids the model sees for ``text`` ([CLS] … [SEP], at most MAX_TOKENS)."""
        return list(self.tokenizer.encode(text).ids)

    def embed(self, text: str) -> Array:
        """The L2-normalised mean-pooled embedding of ``text`` (384 floats)."""
        vector: Array = self.encode(np.asarray([self.tokens(text)]))[0]
        return vector

    def encode(self, ids: NDArray[np.int64]) -> Array:
        """Embeddings of a batch of token-id rows of equal length (no padding, no mask)."""
        w = self._w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        for i in range(self._layers):
            x = self._layer(x, i)
        pooled = x.mean(axis=1)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), _EPS)
        out: Array = (pooled / norms).astype(np.float32)
        return out

    def _layer(self, x: Array, i: int) -> Array:
        p = f"encoder.layer.{i}"
        w, dense = self._w, self._dense
        b, n, d = x.shape
        qkv_w, qkv_b = self._qkv[i]
        q, k, v = np.split(x @ qkv_w + qkv_b, 3, axis=2)
        # (batch, heads, n, head_dim) each
        q, k, v = (t.reshape(b, n, _HEADS, d // _HEADS).transpose(0, 2, 1, 3) for t in (q, k, v))
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(d // _HEADS))
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attn = (scores / scores.sum(axis=-1, keepdims=True)) @ v
        attn = attn.transpose(0, 2, 1, 3).reshape(b, n, d)
        out = attn @ dense[f"{p}.attention.output.dense.weight"]
        out += w[f"{p}.attention.output.dense.bias"]
        x = _layer_norm(
            x + out,
            w[f"{p}.attention.output.LayerNorm.weight"],
            w[f"{p}.attention.output.LayerNorm.bias"],
        )
        hidden = x @ dense[f"{p}.intermediate.dense.weight"] + w[f"{p}.intermediate.dense.bias"]
        out = _gelu(hidden) @ dense[f"{p}.output.dense.weight"] + w[f"{p}.output.dense.bias"]
        return _layer_norm(
            x + out, w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"]
        )


DISTIL_VERSION = 1
"""Bump when :func:`distil` changes: the cached table's name carries it."""


def distil(embedder: Embedder, batch: int = 1024) -> Array:
    """A static embedding per vocabulary token: the model's embedding of ``[CLS] token [SEP]``
    (the model2vec idea), less the vocabulary's mean (the direction every token shares, which
    would otherwise dominate every similarity). One pass over the vocabulary: 1-3 minutes."""
    vocab = embedder.tokenizer.get_vocab_size()
    cls, sep = embedder.tokens("")  # [CLS] [SEP]
    table = np.empty((vocab, DIMENSIONS), dtype=np.float32)
    # One BLAS thread: on a busy machine, threads that spin-wait for each other made this 5x
    # slower; alone it costs little against two threads.
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, vocab, batch):
            ids = np.arange(start, min(start + batch, vocab))
            rows = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
            table[start : start + len(ids)] = embedder.encode(rows)
    centred: Array = table - table.mean(axis=0)
    return centred


def static_table_path(directory: Path) -> Path:
    """Where :meth:`StaticEmbedder.load` keeps the distilled table."""
    return directory / f"static-v{DISTIL_VERSION}.npy"


class StaticEmbedder:
    """Sentence embeddings in microseconds: the mean of the prompt's tokens' static embeddings
    (from :func:`distil`), L2-normalised. What the router uses on every request."""

    MAX_TOKENS = 2048

    def __init__(self, table: Array, tokenizer: Tokenizer) -> None:
        self.table = table
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, directory: Path) -> StaticEmbedder:
        """From ``directory``'s model files; the table is distilled once and cached beside them."""
        cache = static_table_path(directory)
        if not cache.exists():
            tmp = cache.with_suffix(".tmp.npy")
            np.save(tmp, distil(Embedder(directory)))
            tmp.replace(cache)
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(cls.MAX_TOKENS)
        return cls(np.load(cache, mmap_mode="r"), tokenizer)

    def embed(self, text: str) -> Array:
        """The embedding of ``text`` (384 floats, unit length; zeros for an empty text)."""
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        if not ids:
            return np.zeros(DIMENSIONS, dtype=np.float32)
        pooled = self.table[ids].mean(axis=0)
        out: Array = (pooled / max(float(np.linalg.norm(pooled)), _EPS)).astype(np.float32)
        return out
