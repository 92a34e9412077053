"""Host utilisation over a load test's windows, from Prometheus's HTTP API (``query_range``).

CPU comes from node exporter, GPU from the DCGM exporter (GPU hosts only). A Prometheus that
cannot be reached makes every figure absent with a note saying why: the load test records that
and goes on, it never fails because monitoring is down.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from polyllm.monitoring.top import PrometheusUnavailable

log = logging.getLogger(__name__)

# Share of CPU time not idle over all cores (the rule instance:node_cpu_utilisation, but over a
# 15 s window: three 5 s scrapes, so a level of a few seconds still gets its own points).
CPU_QUERY = '1 - avg(rate(node_cpu_seconds_total{mode="idle"}[15s]))'
# DCGM reports percent; as a ratio like the CPU's. No series at all on a host without a GPU.
GPU_QUERY = "avg(DCGM_FI_DEV_GPU_UTIL) / 100"
STEP_S = 5.0
SETTLE_S = 6.0
"""Wait after a run so Prometheus scrapes its last seconds (5 s scrape interval)."""


@dataclass(frozen=True)
class Utilisation:
    """Mean utilisation (0..1) over one window; None where Prometheus had no data."""

    cpu: float | None
    gpu: float | None


def query_range(
    client: httpx.Client, base_url: str, expr: str, start: float, end: float, step_s: float
) -> list[float]:
    """The values of ``expr`` over ``[start, end]`` (Unix seconds), every ``step_s``, all series
    together; raises :class:`PrometheusUnavailable`."""
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"}
    try:
        reply = client.get(f"{base_url}/api/v1/query_range", params=params)
        body: dict[str, Any] = reply.json()
    except httpx.HTTPError as exc:
        raise PrometheusUnavailable(f"cannot reach Prometheus at {base_url}: {exc}") from exc
    except ValueError as exc:
        raise PrometheusUnavailable(f"{base_url} is not a Prometheus API (no JSON)") from exc
    if body.get("status") != "success":
        raise PrometheusUnavailable(f"Prometheus rejected {expr!r}: {body.get('error', body)}")
    values = [float(v) for series in body["data"]["result"] for _, v in series["values"]]
    return [v for v in values if v == v]  # NaN (no traffic, no samples) is no data


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _ready(client: httpx.Client, base_url: str) -> None:
    try:
        status = client.get(f"{base_url}/-/ready").status_code
    except httpx.HTTPError as exc:
        raise PrometheusUnavailable(f"cannot reach Prometheus at {base_url}: {exc}") from exc
    if status != 200:
        raise PrometheusUnavailable(f"Prometheus at {base_url} is not ready (HTTP {status})")


def utilisation(
    base_url: str | None,
    windows: Mapping[int, tuple[float, float]],
    client: httpx.Client | None = None,
    settle_s: float = SETTLE_S,
) -> tuple[dict[int, Utilisation], str]:
    """Mean CPU and GPU utilisation for every ``windows`` entry (key → (start, end), Unix
    seconds), and a note for the report: where the figures come from, or why they are absent.
    A reachable Prometheus is given ``settle_s`` to scrape the end of the last window."""
    absent = {key: Utilisation(None, None) for key in windows}
    if base_url is None:
        return absent, "absent: no Prometheus URL configured"
    own = client is None
    http = client or httpx.Client(timeout=10)
    try:
        _ready(http, base_url)
        time.sleep(settle_s)
        out = {
            key: Utilisation(
                _mean(query_range(http, base_url, CPU_QUERY, start, end, STEP_S)),
                _mean(query_range(http, base_url, GPU_QUERY, start, end, STEP_S)),
            )
            for key, (start, end) in windows.items()
        }
    except PrometheusUnavailable as exc:
        log.warning("host utilisation not recorded: %s", exc)
        return absent, f"absent: {exc}"
    finally:
        if own:
            http.close()
    cpu = "node exporter" if any(u.cpu is not None for u in out.values()) else "no series"
    gpu = "DCGM" if any(u.gpu is not None for u in out.values()) else "no series"
    return out, f"Prometheus {base_url}: CPU {cpu}, GPU {gpu}"
