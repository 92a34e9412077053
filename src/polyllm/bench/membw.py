"""``polyllm bench membw``: this machine's memory bandwidth, by timing a large array copy.

Decoding one token reads every weight of the model once, so a model's file size over the memory
bandwidth is a floor on the time per token (and bandwidth ÷ file size a ceiling on tokens/s),
whatever the cores do. The copy is numpy's ``copyto`` of a buffer far larger than any CPU cache,
on one thread (as each model service decodes with the threads it is given, usually one here);
it moves ``2 * size`` bytes (one read, one write). The best of the repeats is the figure used.
"""

from __future__ import annotations

import csv
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

MIB = 1 << 20
CSV_NAME = "membw.csv"


@dataclass(frozen=True)
class Bandwidth:
    """One measurement: buffer size, repeats, best and median bandwidth in GB/s (10⁹ bytes)."""

    date: str
    cores: int | None
    size_mib: int
    repeats: int
    best_gb_s: float
    median_gb_s: float


def copy_bandwidth(size_mib: int = 512, repeats: int = 10) -> Bandwidth:
    """Time ``repeats`` copies of a ``size_mib`` MiB buffer (after one untimed copy that maps
    every page)."""
    import numpy as np

    if size_mib < 1 or repeats < 1:
        raise ValueError("size_mib and repeats must be at least 1")
    source = np.ones(size_mib * MIB, dtype=np.uint8)
    target = np.empty_like(source)
    np.copyto(target, source)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(target, source)
        seconds.append(time.perf_counter() - started)
    moved = 2 * source.nbytes
    return Bandwidth(
        time.strftime("%Y-%m-%d"), os.cpu_count(), size_mib, repeats,
        moved / min(seconds) / 1e9, moved / statistics.median(seconds) / 1e9,
    )  # fmt: skip


def write_bandwidth(result: Bandwidth, out_dir: Path) -> Path:
    """``membw.csv`` in ``out_dir``: one row."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / CSV_NAME
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(result)))
        writer.writeheader()
        writer.writerow({k: round(v, 3) if isinstance(v, float) else v
                         for k, v in asdict(result).items()})  # fmt: skip
    return path


def read_bandwidth(out_dir: Path) -> float | None:
    """The best GB/s of ``out_dir/membw.csv``; None when there is no such file."""
    path = out_dir / CSV_NAME
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        return float(next(csv.DictReader(f))["best_gb_s"])


def decode_bound_tok_s(file_bytes: int, bandwidth_gb_s: float) -> float:
    """The most tokens/s memory bandwidth allows when every token reads ``file_bytes``."""
    return bandwidth_gb_s * 1e9 / file_bytes
