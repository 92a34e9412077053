"""``polyllm smoke``: the same prompts to every model service and through the router, on the
running stack; writes ``docs/benchmarks/smoke.md`` and ``smoke.csv``."""

from __future__ import annotations

import asyncio
import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from polyllm.bench.sse_client import stream_generate
from polyllm.stack.config import StackConfig

PROMPTS = (
    "What is the capital of France? Answer in one sentence.",
    "Write a Python function that returns the square of a number.",
    "What is 17 * 23? Show the result.",
)
MAX_TOKENS = 64
SHOWN_CHARS = 80


@dataclass(frozen=True)
class SmokeRow:
    """One prompt sent to one target."""

    target: str
    model: str
    prompt: int
    status: int
    response: str
    ttft_s: float | None
    latency_s: float
    tokens_per_s: float | None
    completion_tokens: int
    error: str | None


def targets(config: StackConfig) -> dict[str, str]:
    """Target name → ``/generate`` URL: every model service, then the router."""
    out = {m: f"http://{config.host}:{c.port}/generate" for m, c in config.models.items()}
    out["router"] = f"http://{config.host}:{config.router.port}/generate"
    return out


async def run_smoke(config: StackConfig) -> list[SmokeRow]:
    """Send every prompt to every target, one request at a time (temp 0, cache off)."""
    rows: list[SmokeRow] = []
    async with httpx.AsyncClient(timeout=300) as client:
        for target, url in targets(config).items():
            for i, prompt in enumerate(PROMPTS):
                body: dict[str, object] = {"prompt": prompt, "max_tokens": MAX_TOKENS, "temp": 0}
                if target == "router":
                    body["cache"] = False
                result = await stream_generate(client, url, body)
                stats = result.stats
                rows.append(
                    SmokeRow(
                        target=target,
                        model=stats.model if stats else "-",
                        prompt=i + 1,
                        status=result.status_code,
                        response=" ".join(result.text.split())[:SHOWN_CHARS],
                        ttft_s=result.ttft_s,
                        latency_s=result.latency_s,
                        tokens_per_s=stats.tokens_per_s if stats else None,
                        completion_tokens=stats.completion_tokens if stats else 0,
                        error=result.error,
                    )
                )
    return rows


def write_report(rows: list[SmokeRow], out_dir: Path) -> Path:
    """``smoke.csv`` (every row) and ``smoke.md`` (the table)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "smoke.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    lines = [
        "# Smoke test: every model and the router, same prompts",
        "",
        f"Written by `polyllm smoke` on {time.strftime('%Y-%m-%d %H:%M')} against the running "
        f"stack; temp 0, max_tokens {MAX_TOKENS}, one request at a time, router cache off. "
        "TTFT and latency are measured by the client (request sent → first token / done).",
        "",
        "Prompts: " + "; ".join(f"({i + 1}) {p}" for i, p in enumerate(PROMPTS)),
        "",
        "| target | model | prompt | status | TTFT (s) | latency (s) | tok/s | response |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ttft = f"{r.ttft_s:.3f}" if r.ttft_s is not None else "-"
        rate = f"{r.tokens_per_s:.1f}" if r.tokens_per_s is not None else "-"
        shown = (r.error or r.response).replace("|", "\\|")
        lines.append(
            f"| {r.target} | {r.model} | {r.prompt} | {r.status} | {ttft} | "
            f"{r.latency_s:.3f} | {rate} | {shown} |"
        )
    report = out_dir / "smoke.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def smoke(config: StackConfig, out_dir: Path) -> tuple[list[SmokeRow], Path]:
    """Run the smoke test and write the report."""
    rows = asyncio.run(run_smoke(config))
    return rows, write_report(rows, out_dir)
