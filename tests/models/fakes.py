"""Tiny fabricated model bytes and checks shared by the model fetcher's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DATA = bytes(range(256)) * 40 + b"tail"  # 10 KiB and a bit: several reads, odd length
OTHER = bytes(reversed(DATA))  # same size, different sha256


def leftovers(models_dir: Path) -> list[str]:
    """Files a failed fetch must not leave behind (final or temporary model files)."""
    if not models_dir.exists():
        return []
    return sorted(p.name for p in models_dir.iterdir() if p.name.endswith((".gguf", ".part")))


def no_pip(*args: Any, **kwargs: Any) -> Any:
    """A stand-in for ``subprocess.run`` in tests where pip must not run."""
    raise AssertionError(f"pip must not run: {args!r}")
