"""The web UI's side of the router: the built UI at ``/``, the committed benchmark plots, and
live figures from Prometheus through a fixed allow-list of named PromQL queries.

Callers name a figure (``/ui/figures/p95_latency_s``); they never send PromQL, so the endpoint
cannot be used to run arbitrary queries against Prometheus.
"""

from __future__ import annotations

import asyncio
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from polyllm.common.errors import PolyLLMError
from polyllm.common.schemas import FallbackAttempt
from polyllm.router.deps import ServiceDep

router = APIRouter()

FigureUnit = Literal["req/s", "s", "tokens/s", "ratio"]
WINDOW = "5m"  # long enough that a demo's few requests still show a rate


@dataclass(frozen=True)
class FigureQuery:
    """One allow-listed PromQL query and how to show its result."""

    name: str
    title: str
    unit: FigureUnit
    expr: str


def _share(metric: str) -> str:
    rate = f"sum by (model) (rate({metric}[{WINDOW}]))"
    return f"{rate} / ignoring (model) group_left sum({rate})"


FIGURES: dict[str, FigureQuery] = {
    q.name: q
    for q in (
        FigureQuery(
            "requests_per_s",
            "Requests per second (router)",
            "req/s",
            f"sum(rate(polyllm_router_requests_total[{WINDOW}]))",
        ),
        FigureQuery(
            "p95_latency_s",
            "p95 latency per model (router)",
            "s",
            "histogram_quantile(0.95, sum by (model, le) "
            f"(rate(polyllm_router_request_latency_seconds_bucket[{WINDOW}])))",
        ),
        FigureQuery(
            "tokens_per_s",
            "Tokens per second per model",
            "tokens/s",
            f"sum by (model) (rate(polyllm_model_tokens_generated_total[{WINDOW}]))",
        ),
        FigureQuery(
            "cache_hit_ratio",
            "Cache hit ratio (cacheable requests)",
            "ratio",
            f"sum(rate(polyllm_router_cache_hits_total[{WINDOW}])) / "
            f"(sum(rate(polyllm_router_cache_hits_total[{WINDOW}])) + "
            f"sum(rate(polyllm_router_cache_misses_total[{WINDOW}])))",
        ),
        FigureQuery(
            "model_share",
            "Model-selection share",
            "ratio",
            _share("polyllm_router_model_selected_total"),
        ),
    )
}


# -- response shapes (in the OpenAPI document, so the UI's types are generated from them) -----


class FigureSeries(BaseModel):
    """One series of a figure: its labels (e.g. ``{"model": "m1"}``) and current value."""

    labels: dict[str, str]
    value: float | None = Field(description="null when undefined (no traffic in the window).")


class Figure(BaseModel):
    """The current result of one allow-listed query."""

    name: str
    title: str
    unit: FigureUnit
    query: str = Field(description="The PromQL that produced it (for reference).")
    series: list[FigureSeries]


class Figures(BaseModel):
    """Every allow-listed figure, from one Prometheus."""

    prometheus_url: str
    window: str
    figures: list[Figure]


class BenchmarkChart(BaseModel):
    """A committed benchmark plot."""

    name: str = Field(description="Path under the benchmarks folder, e.g. router-latency.png.")
    title: str
    url: str


class BenchmarkCharts(BaseModel):
    """The committed benchmark plots, in name order."""

    folder: str
    charts: list[BenchmarkChart]


class LastRequestStats(BaseModel):
    """``GET /last_request_stats`` as the UI reads it (the router writes it in
    ``RouterService.record``; tests/router/test_ui_api.py checks a real answer against this)."""

    request_id: str | None
    model_id: str
    backend: Literal["cpu", "gpu"]
    host: str
    confidence: float
    rationale: str
    latency_s: float
    ttft_s: float
    tokens_per_s: float
    completion_tokens: int
    prompt_tokens: int
    cache_hit: bool
    fallbacks: list[FallbackAttempt]
    backend_fallback: bool


# -- errors (mapped to JSON bodies by the app's one error mapper) ----------------------------


class NotFound(PolyLLMError):
    """A UI file, plot or figure that does not exist."""

    status_code = 404
    code = "not_found"


class PrometheusUnavailable(PolyLLMError):
    """Prometheus could not be reached (down, wrong URL, too slow)."""

    status_code = 503
    code = "prometheus_unavailable"


class PrometheusFailed(PolyLLMError):
    """Prometheus answered, but not with a result (an error status or a body we cannot read)."""

    status_code = 502
    code = "prometheus_error"


# -- routes ----------------------------------------------------------------------------------


@router.get("/", include_in_schema=False, response_model=None)
async def index(service: ServiceDep) -> FileResponse | HTMLResponse:
    """The UI's page, or a page saying how to build it."""
    page = service.settings.ui_dir / "index.html"
    if not page.is_file():
        return HTMLResponse(_not_built_page(page), status_code=503)
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/assets/{name:path}", include_in_schema=False)
async def asset(name: str, service: ServiceDep) -> FileResponse:
    """The UI's scripts and styles (content-hashed names: cached for good)."""
    path = file_under(service.settings.ui_dir / "assets", name)
    return FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable"})


@router.get("/ui/benchmarks", response_model=BenchmarkCharts)
async def benchmark_charts(service: ServiceDep) -> BenchmarkCharts:
    """The committed benchmark plots (``*.png`` under the benchmarks folder), titled with the
    run they belong to; the router's runs first (what callers get), then the rest by name."""
    folder = service.settings.benchmarks_dir
    paths = sorted(folder.rglob("*.png")) if folder.is_dir() else []
    paths.sort(key=lambda p: not p.parent.name.endswith("router"))  # stable: names stay sorted
    charts = [
        BenchmarkChart(
            name=(name := p.relative_to(folder).as_posix()),
            title=_chart_title(p.relative_to(folder)),
            url=f"/ui/benchmarks/{name}",
        )
        for p in paths
    ]
    return BenchmarkCharts(folder=str(folder), charts=charts)


def _chart_title(relative: Path) -> str:
    """``cpu/short-router/ttft_vs_concurrency.png`` → ``short-router: ttft vs concurrency``."""
    words = relative.stem.replace("-", " ").replace("_", " ")
    return f"{relative.parent.name}: {words}" if relative.parent.name else words


@router.get("/ui/benchmarks/{name:path}", include_in_schema=False)
async def benchmark_chart(name: str, service: ServiceDep) -> FileResponse:
    """One committed plot."""
    path = file_under(service.settings.benchmarks_dir, name)
    if path.suffix != ".png":
        raise NotFound(f"no benchmark plot {name!r}", param="name")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})


@router.get("/ui/figures", response_model=Figures)
async def figures(service: ServiceDep) -> Figures:
    """Every allow-listed figure, queried now (503 when Prometheus is down, 502 when it fails)."""
    settings = service.settings
    results = await asyncio.gather(
        *(
            query_figure(service.client, settings.prometheus_url, q, settings.prometheus_timeout_s)
            for q in FIGURES.values()
        ),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    done = [r for r in results if isinstance(r, Figure)]
    return Figures(prometheus_url=settings.prometheus_url, window=WINDOW, figures=done)


@router.get("/ui/figures/{name}", response_model=Figure)
async def figure(name: str, service: ServiceDep) -> Figure:
    """One allow-listed figure by name (404 naming the known ones otherwise)."""
    query = FIGURES.get(name)
    if query is None:
        raise NotFound(f"unknown figure {name!r}; known: {', '.join(FIGURES)}", param="name")
    settings = service.settings
    return await query_figure(
        service.client, settings.prometheus_url, query, settings.prometheus_timeout_s
    )


# -- the work --------------------------------------------------------------------------------


def file_under(root: Path, name: str) -> Path:
    """``root/name`` if it is a file inside ``root`` (no ``..`` or symlink escapes), else
    :class:`NotFound`."""
    base = root.resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise NotFound(f"no file {name!r}", param="name")
    return path


async def query_figure(
    client: httpx.AsyncClient, prometheus_url: str, query: FigureQuery, timeout_s: float
) -> Figure:
    """Run one allow-listed query as an instant query."""
    url = f"{prometheus_url.rstrip('/')}/api/v1/query"
    try:
        reply = await client.get(url, params={"query": query.expr}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise PrometheusUnavailable(
            f"Prometheus at {prometheus_url} is not reachable ({type(exc).__name__}); "
            "start it (`make up` does) or set PROMETHEUS_URL"
        ) from exc
    try:
        body: dict[str, Any] = reply.json()
    except ValueError as exc:
        raise PrometheusFailed(
            f"Prometheus at {prometheus_url} answered {reply.status_code} without JSON"
        ) from exc
    if reply.status_code != 200 or body.get("status") != "success":
        detail = body.get("error") or f"HTTP {reply.status_code}"
        raise PrometheusFailed(f"Prometheus could not run {query.name}: {detail}")
    series = [
        FigureSeries(labels=_labels(s.get("metric", {})), value=_number(s["value"][1]))
        for s in body["data"]["result"]
    ]
    series.sort(key=lambda s: sorted(s.labels.items()))
    return Figure(
        name=query.name, title=query.title, unit=query.unit, query=query.expr, series=series
    )


def _labels(metric: dict[str, str]) -> dict[str, str]:
    # Scrape labels (job, instance) say nothing to a UI reader; `model` etc. do.
    return {k: v for k, v in metric.items() if k not in ("job", "instance", "__name__")}


def _number(raw: str) -> float | None:
    value = float(raw)
    return value if math.isfinite(value) else None


def _not_built_page(page: Path) -> str:
    where = html.escape(str(page.resolve()))
    return (
        "<!doctype html><meta charset=utf-8><title>PolyLLM: UI not built</title>"
        "<h1>The PolyLLM web UI is not built</h1>"
        f"<p>The router serves the UI from <code>{where}</code>, which does not exist.</p>"
        "<p>Build it with <code>make ui</code> (or <code>cd ui &amp;&amp; npm ci &amp;&amp; "
        "npm run build</code>), or point <code>UI_DIR</code> at a build. The API works "
        "without it: <code>POST /generate</code>, <code>GET /health</code>.</p>"
    )
