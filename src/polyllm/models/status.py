"""What is on disk for a model: its path, whether it is verified, and the cache of its sha256.

Hashing a large file takes seconds, so every computed sha256 is kept in a sidecar
``<models_dir>/.<id>.verified`` keyed by size and mtime.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from polyllm.models.catalog import ModelSpec

__all__ = [
    "ModelStatus",
    "file_sha256",
    "model_path",
    "model_status",
    "sidecar_path",
    "write_sidecar",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelStatus:
    """What is on disk for one model."""

    model_id: str
    path: Path
    present: bool
    size_bytes: int | None
    """Size of the file on disk; None when absent."""
    sha256: str | None
    """sha256 of the file on disk (computed or cached); None when absent or of the wrong size."""
    verified: bool
    """Present with the catalog's size (when it gives one) and sha256."""


def model_path(spec: ModelSpec, models_dir: Path) -> Path:
    """Where the file of ``spec`` lives: ``<models_dir>/<id>.gguf``."""
    return models_dir / f"{spec.id}.gguf"


def file_sha256(path: Path) -> str:
    """The hex sha256 of the file at ``path``."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def model_status(spec: ModelSpec, models_dir: Path) -> ModelStatus:
    """Whether the file of ``spec`` is present and verified.

    The sha256 comes from the sidecar cache when size and mtime still match. A file of the wrong
    size is never hashed; when the spec gives no size (a custom file), every file is hashed.
    """
    path = model_path(spec, models_dir)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return ModelStatus(
            spec.id, path, present=False, size_bytes=None, sha256=None, verified=False
        )
    size_ok = spec.size_bytes is None or size == spec.size_bytes
    sha = _cached_sha256(path, sidecar_path(spec, models_dir)) if size_ok else None
    return ModelStatus(
        spec.id, path, present=True, size_bytes=size, sha256=sha, verified=sha == spec.sha256
    )


def sidecar_path(spec: ModelSpec, models_dir: Path) -> Path:
    """The verification cache of the file of ``spec``."""
    return models_dir / f".{spec.id}.verified"


def write_sidecar(sidecar: Path, st: os.stat_result, sha: str) -> None:
    """Record that the file with stat ``st`` has sha256 ``sha``; best effort."""
    record = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    try:
        tmp.write_text(json.dumps(record))
        os.replace(tmp, sidecar)
    except OSError as exc:  # e.g. a read-only models volume: verification still works, uncached
        logger.debug("cannot write verification cache %s (%s)", sidecar, exc)


def _cached_sha256(path: Path, sidecar: Path) -> str:
    st = path.stat()
    try:
        cached = json.loads(sidecar.read_text())
        if cached["size"] == st.st_size and cached["mtime_ns"] == st.st_mtime_ns:
            return str(cached["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # A missing or unreadable sidecar is only a cache miss: hash the file instead.
        logger.debug("no usable verification cache %s (%s)", sidecar, exc)
    sha = file_sha256(path)
    write_sidecar(sidecar, st, sha)
    return sha
