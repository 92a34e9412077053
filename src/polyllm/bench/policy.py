"""``polyllm bench policy``: what one routing decision costs, and the router's memory.

In-process, each prompt's decision is timed in two parts, featurisation (cues + embedding + PCA)
and prediction (LightGBM, one thread). Then a real router process (learned policy, fake
backends, its own Redis) answers ``POST /route`` for every prompt; its resident memory comes
from its own ``/metrics`` (``process_resident_memory_bytes``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from polyllm.bench.processes import free_port, redis_server, router_service
from polyllm.bench.router import percentile
from polyllm.router.policy import Candidate, make_policy
from polyllm.router.policy.learned import LearnedPolicy
from polyllm.router.settings import RouterSettings

SAMPLE = Path(__file__).parent / "sample_prompts.jsonl"
MODELS = ("m1", "m2", "m3", "m4", "m5")
BUDGET = {"p50_ms": 10.0, "p99_ms": 30.0, "rss_mib": 1024.0}


@dataclass(frozen=True)
class PolicyFigures:
    """Per-decision latencies (ms) and the router process's memory."""

    prompts: int
    featurise_p50: float
    featurise_p99: float
    decide_p50: float
    decide_p99: float
    route_http_p50: float
    route_http_p99: float
    router_rss_mib: float


def load_prompts(path: Path | None) -> list[str]:
    """Prompt texts from a JSONL file with a ``prompt`` field (the bundled sample by default)."""
    source = path if path is not None and path.exists() else SAMPLE
    with source.open(encoding="utf-8") as f:
        return [json.loads(line)["prompt"] for line in f if line.strip()]


def _timed_ms(fn: Callable[[str], object], prompts: list[str]) -> list[float]:
    """Milliseconds of ``fn(prompt)`` for each prompt."""
    times = []
    for prompt in prompts:
        start = time.perf_counter()
        fn(prompt)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _fake_backend(stack: ExitStack, workdir: Path, model: str) -> str:
    port = free_port()
    log = (workdir / f"fake-{model}.log").open("wb")
    stack.callback(log.close)
    cmd = [sys.executable, "-m", "polyllm.bench.fake_backend", "--port", str(port),
           "--model", model]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    stack.callback(proc.wait, 10)
    stack.callback(proc.terminate)
    return f"http://127.0.0.1:{port}"


def run(prompts: list[str], workdir: Path, settings: RouterSettings) -> PolicyFigures:
    """Time the policy in-process, then through a real router process."""
    policy = make_policy(settings)
    if not isinstance(policy, LearnedPolicy):
        raise RuntimeError("bench policy measures the learned policy (POLICY=learned)")
    candidates = [Candidate(m, i) for i, m in enumerate(MODELS[:4], start=1)]
    featurizer = policy.trained.featurizer
    for prompt in prompts[:20]:  # warm-up: page in the embedding table
        policy.decide(prompt, candidates)
    featurise = _timed_ms(featurizer.vector, prompts)
    decide = _timed_ms(lambda p: policy.decide(p, candidates), prompts)
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(workdir))
        registry = {
            m: {"url": _fake_backend(stack, workdir, m), "backend": "cpu", "host": "bench",
                "tier": tier, "cost": float(tier)}
            for tier, m in enumerate(MODELS, start=1)
        }  # fmt: skip
        env = {"RATE_CAPACITY": "1000000", "POLICY": "learned"}
        url = stack.enter_context(router_service(registry, redis_url, workdir / "router.log",
                                                 settings=env))  # fmt: skip
        with httpx.Client(timeout=30) as client:
            for prompt in prompts[:20]:
                client.post(f"{url}/route", json={"prompt": prompt}).raise_for_status()

            def route(prompt: str) -> None:
                client.post(f"{url}/route", json={"prompt": prompt}).raise_for_status()

            http = _timed_ms(route, prompts)
            rss = _metric(client.get(f"{url}/metrics").text, "process_resident_memory_bytes")
    return PolicyFigures(
        len(prompts),
        percentile(featurise, 50), percentile(featurise, 99),
        percentile(decide, 50), percentile(decide, 99),
        percentile(http, 50), percentile(http, 99),
        rss / 2**20,
    )  # fmt: skip


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise RuntimeError(f"the router's /metrics has no {name}")


def render(figures: PolicyFigures) -> str:
    """A markdown table of the figures against the budget."""
    rows = [
        ("featurisation (cues + embedding + PCA)", figures.featurise_p50, figures.featurise_p99),
        ("featurisation + prediction (decide)", figures.decide_p50, figures.decide_p99),
        ("POST /route through the router (HTTP, loopback)", figures.route_http_p50,
         figures.route_http_p99),
    ]  # fmt: skip
    lines = [
        f"Learned policy over {figures.prompts} prompts (ms; budget for featurisation + "
        f"prediction: p50 ≤ {BUDGET['p50_ms']:g}, p99 ≤ {BUDGET['p99_ms']:g}).",
        "",
        "| measurement | p50 ms | p99 ms |",
        "|---|---:|---:|",
        *(f"| {name} | {p50:.2f} | {p99:.2f} |" for name, p50, p99 in rows),
        "",
        f"Router process RSS after the run: {figures.router_rss_mib:.0f} MiB "
        f"(budget {BUDGET['rss_mib']:g} MiB).",
    ]
    return "\n".join(lines)
