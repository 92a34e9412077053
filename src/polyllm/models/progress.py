"""The fetcher's progress bar: a rich bar on stderr, or nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from polyllm.models.catalog import ModelSpec

__all__ = ["Bar", "NullBar", "progress_bar"]


class Bar(Protocol):
    """Where sources report the bytes they wrote."""

    def advance(self, n: int) -> None:
        """``n`` more bytes are written."""

    def describe(self, text: str) -> None:
        """Show ``text`` as what is being fetched now."""


class NullBar:
    """A :class:`Bar` that shows nothing."""

    def advance(self, n: int) -> None:
        """Nothing to show."""

    def describe(self, text: str) -> None:
        """Nothing to show."""


@dataclass
class _RichBar:
    progress: Progress
    task: TaskID

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def describe(self, text: str) -> None:
        self.progress.update(self.task, description=text)


@contextlib.contextmanager
def progress_bar(spec: ModelSpec, *, enabled: bool) -> Iterator[Bar]:
    """A bar for fetching ``spec`` (without a total when its size is unknown), or a null one."""
    if not enabled:
        yield NullBar()
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield _RichBar(progress, progress.add_task(spec.id, total=spec.size_bytes))
