"""`polyllm top`: the dashboard's numbers in a terminal, from the same Prometheus queries.

The queries live in :data:`QUERIES` (most are recording rules of deploy/prometheus/rules.yml, so
top and the Grafana dashboard agree). :func:`fetch` runs them through Prometheus's HTTP API;
:func:`render` turns the results into a table and does no I/O, so it is tested without a server.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

DEFAULT_URL = "http://127.0.0.1:9090"
MISSING = "\u2013"  # en dash: no data

# One instant query per number shown; per-model ones keep a `model` label.
QUERIES: dict[str, str] = {
    "req_per_s": 'sum by (model) (rate(polyllm_model_requests_total{status="ok"}[1m]))',
    "p95_latency_s": 'model:polyllm_model_gen_latency_seconds:quantile1m{quantile="0.95"}',
    "tokens_per_s": "model:polyllm_model_tokens_generated:rate1m",
    "selection_share": "model:polyllm_router_model_selected:share1m",
    "backend_up": "max by (model) (polyllm_router_backend_up)",
    "cache_hit_ratio": "polyllm:router_cache_hit:ratio1m",
    "rate_limited_per_s": "polyllm:router_rate_limited:rate1m",
    "fallbacks_per_s": "sum(reason:polyllm_router_fallbacks:rate1m)",
    "cpu_utilisation": "avg(instance:node_cpu_utilisation:ratio1m)",
}

Series = tuple[dict[str, str], float]
"""One sample of an instant vector: its labels and its value."""
Snapshot = Mapping[str, list[Series]]
"""The result of every query in :data:`QUERIES`, by key (a missing key means no data)."""


class PrometheusUnavailable(Exception):
    """Prometheus could not be reached or did not answer a query."""


@dataclass(frozen=True)
class _Column:
    key: str
    title: str
    unit: str  # how the value is formatted: "rate", "seconds", "percent", "up"


_MODEL_COLUMNS = (
    _Column("req_per_s", "req/s", "rate"),
    _Column("p95_latency_s", "p95 latency", "seconds"),
    _Column("tokens_per_s", "tokens/s", "rate"),
    _Column("selection_share", "selected", "percent"),
    _Column("backend_up", "up", "up"),
)
_OVERALL = (
    _Column("cache_hit_ratio", "cache hit ratio", "percent"),
    _Column("rate_limited_per_s", "rate-limited/s", "rate"),
    _Column("fallbacks_per_s", "fallbacks/s", "rate"),
    _Column("cpu_utilisation", "CPU", "percent"),
)


def _format(value: float | None, unit: str) -> str:
    """A value for display; :data:`MISSING` when absent or not finite (a quantile or a ratio
    without traffic is NaN)."""
    if value is None or not math.isfinite(value):
        return MISSING
    if unit == "seconds":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "percent":
        return f"{value * 100:.1f} %"
    if unit == "up":
        return "[green]up[/green]" if value >= 1 else "[red]down[/red]"
    return f"{value:.2f}"


def _by_model(snapshot: Snapshot, key: str) -> dict[str, float]:
    return {labels["model"]: value for labels, value in snapshot.get(key, []) if "model" in labels}


def _single(snapshot: Snapshot, key: str) -> float | None:
    series = snapshot.get(key, [])
    return series[0][1] if series else None


def _backends_up(snapshot: Snapshot) -> str:
    up = _by_model(snapshot, "backend_up")
    if not up:
        return MISSING
    return f"{sum(1 for v in up.values() if v >= 1)}/{len(up)}"


def render(snapshot: Snapshot) -> Table:
    """One frame: a row per model, then the stack-wide numbers. Pure: no I/O."""
    models_table = Table(title="polyllm top", title_justify="left")
    models_table.add_column("model")
    for column in _MODEL_COLUMNS:
        models_table.add_column(column.title, justify="right")
    per_model = {c.key: _by_model(snapshot, c.key) for c in _MODEL_COLUMNS}
    models = sorted({model for values in per_model.values() for model in values})
    for model in models:
        cells = [_format(per_model[c.key].get(model), c.unit) for c in _MODEL_COLUMNS]
        models_table.add_row(model, *cells)
    if not models:
        models_table.add_row(MISSING, *(MISSING for _ in _MODEL_COLUMNS))
    overall = Table()
    for column in _OVERALL:
        overall.add_column(column.title, justify="right")
    overall.add_column("backends up", justify="right")
    overall.add_row(
        *(_format(_single(snapshot, c.key), c.unit) for c in _OVERALL), _backends_up(snapshot)
    )
    frame = Table.grid()
    frame.add_row(models_table)
    frame.add_row(overall)
    return frame


def _query(client: httpx.Client, base_url: str, expr: str) -> list[Series]:
    try:
        reply = client.get(f"{base_url}/api/v1/query", params={"query": expr})
        body: dict[str, Any] = reply.json()
    except httpx.HTTPError as exc:
        raise PrometheusUnavailable(f"cannot reach Prometheus at {base_url}: {exc}") from exc
    except ValueError as exc:  # not JSON: something else answers at that URL
        raise PrometheusUnavailable(f"{base_url} is not a Prometheus API (no JSON)") from exc
    if body.get("status") != "success":
        raise PrometheusUnavailable(f"Prometheus rejected {expr!r}: {body.get('error', body)}")
    result = body["data"]["result"]
    return [(dict(s["metric"]), float(s["value"][1])) for s in result]


def fetch(client: httpx.Client, base_url: str) -> dict[str, list[Series]]:
    """Run every query of :data:`QUERIES`; raises :class:`PrometheusUnavailable`."""
    return {key: _query(client, base_url, expr) for key, expr in QUERIES.items()}


def _frame(client: httpx.Client, base_url: str) -> Table | Group:
    try:
        return render(fetch(client, base_url))
    except PrometheusUnavailable as exc:
        return Group(Text(f"error: {exc}", style="red"), Text("retrying…", style="dim"))


def top_command(
    prometheus_url: Annotated[
        str, typer.Option(envvar="PROMETHEUS_URL", help="Prometheus server to query.")
    ] = DEFAULT_URL,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes.")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
) -> None:
    """Live per-model req/s, p95 latency, tokens/s and selection share, from Prometheus."""
    base_url = prometheus_url.rstrip("/")
    out = Console(soft_wrap=True, highlight=False)
    with httpx.Client(timeout=5) as client:
        if once:
            try:
                snapshot = fetch(client, base_url)
            except PrometheusUnavailable as exc:
                Console(stderr=True, soft_wrap=True, highlight=False).print(
                    f"[red]error:[/red] {exc}"
                )
                raise typer.Exit(1) from None
            out.print(render(snapshot))
            return
        try:
            with Live(_frame(client, base_url), console=out, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(_frame(client, base_url), refresh=True)
        except KeyboardInterrupt:
            pass
