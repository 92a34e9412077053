"""The model service app: ``create_app(settings)``; the engine loads in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from polyllm import __version__
from polyllm.common.errors import install_error_handlers
from polyllm.common.middleware import RequestIdMiddleware
from polyllm.inference.batching import BatchingEngine
from polyllm.inference.engine import LlamaEngine
from polyllm.inference.gpu import read_gpus
from polyllm.inference.metrics import ModelMetrics
from polyllm.inference.routes import router
from polyllm.inference.settings import InferenceSettings

log = logging.getLogger(__name__)


def make_engine(settings: InferenceSettings, metrics: ModelMetrics) -> LlamaEngine:
    """One request at a time (``n_parallel`` 1, the default), or continuous batching."""
    if settings.n_parallel > 1:
        return BatchingEngine(settings, metrics)
    return LlamaEngine(settings, metrics)


async def _load(app: FastAPI, engine: LlamaEngine, on_failure: Callable[[], None] | None) -> None:
    """Load and warm the model off the event loop, so /health can say "loading" meanwhile."""
    try:
        await engine.start()
    except Exception as exc:
        app.state.load_error = str(exc)
        log.error(
            "model failed to load",
            extra={"fields": {"model_id": engine.model_id, "error": str(exc)}},
        )
        if on_failure is not None:
            on_failure()


def create_app(
    settings: InferenceSettings, *, on_load_failure: Callable[[], None] | None = None
) -> FastAPI:
    """Build the model service for ``settings``; nothing is loaded until the app starts.

    ``on_load_failure`` is called when the model cannot be loaded (the CLI stops the server:
    a service that cannot generate must not sit there looking alive).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = "gpu" if settings.use_gpu else "cpu"
        metrics = ModelMetrics(
            settings.model_id, backend, gpus=read_gpus if settings.use_gpu else None
        )
        engine = make_engine(settings, metrics)
        app.state.metrics, app.state.engine, app.state.load_error = metrics, engine, None
        loader = asyncio.create_task(_load(app, engine, on_load_failure))
        try:
            yield
        finally:
            loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loader
            await asyncio.to_thread(engine.close)

    app = FastAPI(
        title=f"PolyLLM model service ({settings.model_id})",
        version=__version__,
        lifespan=lifespan,
    )
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(
        app, lambda request: request.app.state.metrics.observe_request("invalid")
    )
    app.include_router(router)
    return app
