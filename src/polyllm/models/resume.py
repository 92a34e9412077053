"""Resumable downloads (HTTP, S3): retry what broke off from where it stopped, restart what a
kept ``.part`` cannot finish.

A download that breaks off (a dropped connection, Ctrl-C, a killed process) keeps its ``.part``
file; the next attempt, in this process or the next one, asks the source for the rest only.
Whatever is kept is verified like everything else: a resumed file that fails the sha256 (the
source changed, or the part came from elsewhere) is removed and downloaded again from zero.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from polyllm.models.catalog import ModelSpec
from polyllm.models.errors import ChecksumMismatch, FetchError
from polyllm.models.partfile import part_path, part_writer
from polyllm.models.progress import Bar

__all__ = ["ATTEMPTS", "commit_kept_part", "download_resumably", "resume_offset"]

logger = logging.getLogger(__name__)

ATTEMPTS = 3
"""Attempts of one download that may fail on the network before it is given up."""


def download_resumably(
    spec: ModelSpec,
    target: Path,
    source: str,
    attempt: Callable[[], None],
    transient: tuple[type[Exception], ...],
) -> None:
    """Call ``attempt`` (which resumes from the .part file) until it has committed ``target``.

    ``transient`` errors are retried, keeping the .part, at most :data:`ATTEMPTS` times in all;
    then :class:`FetchError` names the last one. A :class:`ChecksumMismatch` of an attempt that
    resumed removes the .part and starts over; of one that started from zero, it is raised.
    """
    part = part_path(target)
    failures = 0
    while True:
        resuming = part.exists() and part.stat().st_size > 0
        try:
            attempt()
            return
        except ChecksumMismatch as exc:
            if not resuming:
                raise
            logger.warning("model %s: resumed download failed (%s); restarting", spec.id, exc)
            part.unlink(missing_ok=True)
        except transient as exc:
            failures += 1
            if failures >= ATTEMPTS:
                raise FetchError(spec.id, source, f"{failures} attempts failed: {exc!r}") from exc
            logger.warning("model %s: attempt %d failed (%r); resuming", spec.id, failures, exc)
            time.sleep(failures)


def resume_offset(spec: ModelSpec, target: Path, source: str, bar: Bar) -> int | None:
    """How many bytes of the .part file to keep and ask the source to continue after.

    None when there is nothing left to fetch: the kept part already had the spec's size and is
    now verified and committed (e.g. the process was killed just before the rename). A part
    longer than the file is removed (0).
    """
    part = part_path(target)
    offset = part.stat().st_size if part.exists() else 0
    expected = spec.size_bytes
    if expected is not None and offset == expected:
        commit_kept_part(spec, target, source, bar)
        return None
    if expected is not None and offset > expected:
        part.unlink()
        return 0
    return offset


def commit_kept_part(spec: ModelSpec, target: Path, source: str, bar: Bar) -> None:
    """Verify the .part file as it is and commit it; a wrong one is removed (ChecksumMismatch)."""
    with part_writer(spec, target, source, bar, resume=True) as out:
        out.commit()
