"""Writing ``<id>.gguf.part`` while hashing it, and renaming it into place only once verified.

Every source writes through :func:`part_writer`, so nobody ever sees a partial or wrong model
file under its final name. :func:`model_lock` keeps two processes from writing the same part.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from polyllm.models.catalog import ModelSpec
from polyllm.models.errors import ChecksumMismatch
from polyllm.models.progress import Bar, NullBar
from polyllm.models.status import sidecar_path, write_sidecar

__all__ = ["CHUNK", "PartWriter", "copy_into", "model_lock", "part_path", "part_writer"]

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
"""Bytes read at a time from local files, wheels and S3 bodies."""


def part_path(target: Path) -> Path:
    """The temporary file a source writes before it becomes ``target``."""
    return target.with_name(target.name + ".part")


class PartWriter:
    """Appends to ``<target>.part`` while hashing; :meth:`commit` verifies and renames it."""

    def __init__(self, spec: ModelSpec, target: Path, source: str, bar: Bar, fh: IO[bytes]):
        self.spec, self.target, self.source, self.bar, self.fh = spec, target, source, bar, fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        """Append ``data`` to the .part file."""
        self.absorb(data)
        self.fh.write(data)

    def absorb(self, data: bytes) -> None:
        """Count and hash ``data`` that is already in the .part file (a resumed download)."""
        self.size += len(data)
        expected = self.spec.size_bytes
        if expected is not None and self.size > expected:
            reason = f"more than the expected {expected} bytes"
            raise ChecksumMismatch(self.spec.id, self.source, reason)
        self.sha.update(data)
        self.bar.advance(len(data))

    def commit(self) -> None:
        """Rename the .part file to the target if it has the spec's size and sha256."""
        self.fh.flush()
        os.fsync(self.fh.fileno())
        got = self.sha.hexdigest()
        on_disk = os.fstat(self.fh.fileno()).st_size
        expected = self.spec.size_bytes
        want_size = self.size if expected is None else expected
        if (self.size, on_disk, got) != (want_size, self.size, self.spec.sha256):
            want = "size not checked" if expected is None else f"{expected} bytes"
            raise ChecksumMismatch(
                self.spec.id,
                self.source,
                f"sha256 mismatch: expected {self.spec.sha256} ({want}), "
                f"got {got} ({self.size} bytes"
                + (f", {on_disk} written to disk)" if on_disk != self.size else ")"),
            )
        os.replace(part_path(self.target), self.target)
        write_sidecar(sidecar_path(self.spec, self.target.parent), self.target.stat(), got)


@contextlib.contextmanager
def part_writer(
    spec: ModelSpec,
    target: Path,
    source: str,
    bar: Bar | None = None,
    *,
    resume: bool = False,
    keep_on: tuple[type[BaseException], ...] = (),
) -> Iterator[PartWriter]:
    """A writer for ``<target>.part``; the part is removed on errors except those in ``keep_on``."""
    part = part_path(target)
    with part.open("ab" if resume else "wb") as fh:
        out = PartWriter(spec, target, source, bar or NullBar(), fh)
        try:
            if resume:
                with part.open("rb") as existing:
                    for block in iter(lambda: existing.read(CHUNK), b""):
                        out.absorb(block)
            yield out
        except BaseException as exc:
            if not isinstance(exc, keep_on):
                part.unlink(missing_ok=True)
            raise


def copy_into(src: IO[bytes], out: PartWriter) -> None:
    """Append everything left in ``src`` to ``out``."""
    for block in iter(lambda: src.read(CHUNK), b""):
        out.write(block)


@contextlib.contextmanager
def model_lock(models_dir: Path, model_id: str) -> Iterator[None]:
    """Serialise fetches of one model across processes (e.g. two services starting at once)."""
    with (models_dir / f".{model_id}.lock").open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("model %s: waiting for another process fetching it", model_id)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
