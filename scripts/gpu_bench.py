"""TTFT and decode tokens/s of model services on the CPU and on the GPU of one host, on the same
prompts and settings as ``polyllm bench models``; run by scripts/gpu-check.sh.

    python scripts/gpu_bench.py --models m4,m5 --backends cpu,gpu --out docs/benchmarks/gpu

Each (model, backend) runs alone: ``polyllm serve-model`` with ``USE_GPU`` set accordingly,
checked through ``/health`` to really be on that backend, then greedy decoding with the end of
sequence ignored, every repeat a fresh prompt (no prompt-cache reuse). Writes
``gpu-latency.csv`` (every sample), ``gpu-latency-summary.csv`` (medians, CPU and GPU side by
side, with the speed-up) and ``gpu-latency.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import os
import platform
import statistics
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from polyllm.bench.latency import PROMPTS
from polyllm.bench.processes import model_service
from polyllm.bench.sse_client import stream_generate

log = logging.getLogger("gpu_bench")
N_CTX = 2048


@dataclass(frozen=True)
class Sample:
    """One measured generation, as an HTTP client of the service sees it."""

    model: str
    backend: str
    device: str
    prompt: str
    repeat: int
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float
    decode_tok_s: float
    engine_ttft_ms: float
    engine_tok_s: float


async def _measure(
    url: str, model: str, backend: str, repeats: int, max_tokens: int
) -> list[Sample]:
    async with httpx.AsyncClient(timeout=600) as client:
        health = (await client.get(f"{url}/health")).json()
        if health["backend"] != backend:  # never report CPU figures as GPU ones
            raise RuntimeError(f"{model}: asked for {backend}, the service runs on {health}")
        device = health.get("device") or platform.processor() or "cpu"
        samples = []
        for kind, text in PROMPTS.items():
            for repeat in range(repeats):
                body = {
                    "prompt": f"Note {repeat + 1}. {text}", "max_tokens": max_tokens, "temp": 0.0,
                    "raw": True, "ignore_eos": True,
                }  # fmt: skip
                result = await stream_generate(client, f"{url}/generate", body)
                if result.stats is None or result.ttft_s is None:
                    raise RuntimeError(f"{model} on {backend}: {result.error or 'no tokens'}")
                samples.append(
                    Sample(
                        model,
                        backend,
                        device,
                        kind,
                        repeat,
                        result.stats.prompt_tokens,
                        result.stats.completion_tokens,
                        result.ttft_s * 1000,
                        result.decode_tokens_per_s or 0.0,
                        result.stats.ttft_s * 1000,
                        result.stats.tokens_per_s,
                    )
                )
        return samples


def measure(
    model: str, backend: str, *, models_dir: Path, out: Path, repeats: int, max_tokens: int
) -> list[Sample]:
    """Serve ``model`` on ``backend`` alone, warm it, and time ``repeats`` of each prompt."""
    os.environ["USE_GPU"] = "true" if backend == "gpu" else "false"  # read by the service
    log_path = out / "logs" / f"{model}-{backend}.log"
    threads = max(1, os.cpu_count() or 1)
    with model_service(
        model, log_path, models_dir=models_dir, n_threads=threads, n_ctx=N_CTX,
        log_level="WARNING", timeout_s=900,
    ) as url:  # fmt: skip
        log.info("%s on %s: measuring", model, backend)
        return asyncio.run(_measure(url, model, backend, repeats, max_tokens))


def summarise(samples: list[Sample]) -> list[dict[str, Any]]:
    """Medians per (model, prompt), the CPU and GPU figures side by side."""
    rows = []
    for model in dict.fromkeys(s.model for s in samples):
        for prompt in PROMPTS:
            row: dict[str, Any] = {"model": model, "prompt": prompt}
            for backend in ("cpu", "gpu"):
                mine = [
                    s for s in samples if (s.model, s.prompt, s.backend) == (model, prompt, backend)
                ]
                if not mine:
                    continue
                row["prompt_tokens"] = mine[0].prompt_tokens
                row[f"{backend}_device"] = mine[0].device
                row[f"{backend}_ttft_ms"] = round(statistics.median(s.ttft_ms for s in mine), 1)
                row[f"{backend}_tok_s"] = round(statistics.median(s.decode_tok_s for s in mine), 1)
            if "cpu_tok_s" in row and "gpu_tok_s" in row:
                row["ttft_speedup"] = round(row["cpu_ttft_ms"] / row["gpu_ttft_ms"], 2)
                row["tok_s_speedup"] = round(row["gpu_tok_s"] / row["cpu_tok_s"], 2)
            rows.append(row)
    return rows


def write(
    samples: list[Sample], rows: list[dict[str, Any]], out: Path, args: argparse.Namespace
) -> None:
    """The three report files in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "gpu-latency.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(samples[0])))
        writer.writeheader()
        writer.writerows(asdict(s) for s in samples)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with (out / "gpu-latency-summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# GPU vs CPU latency: model services on one host",
        "",
        f"Written by `scripts/gpu-check.sh` (scripts/gpu_bench.py): {os.cpu_count()} cores"
        f" (all used as llama.cpp threads on the CPU), llama-cpp-python"
        f" {metadata.version('llama-cpp-python')}, n_ctx {N_CTX}, greedy decoding of"
        f" {args.max_tokens} tokens (end of sequence ignored), {args.repeats} repeats per prompt;"
        " TTFT and tok/s as an HTTP client of the service sees them; medians.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows),
        "",
        "Every sample: `gpu-latency.csv`; medians: `gpu-latency-summary.csv`.",
        "",
    ]
    (out / "gpu-latency.md").write_text("\n".join(lines))


def main() -> None:
    """Measure, then write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="m4,m5", help="comma-separated model ids")
    parser.add_argument("--backends", default="cpu,gpu", help="cpu, gpu or both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/gpu"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    backends = [b for b in args.backends.split(",") if b]
    if not set(backends) <= {"cpu", "gpu"}:
        parser.error(f"--backends: cpu and/or gpu, got {args.backends}")
    samples = [
        sample
        for model in args.models.split(",")
        for backend in backends
        for sample in measure(
            model,
            backend,
            models_dir=args.models_dir,
            out=args.out,
            repeats=args.repeats,
            max_tokens=args.max_tokens,
        )
    ]
    rows = summarise(samples)
    write(samples, rows, args.out, args)
    for row in rows:
        log.info("%s", row)


if __name__ == "__main__":
    main()
