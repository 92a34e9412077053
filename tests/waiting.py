"""Waiting for something a real process will do, with a deadline instead of a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], object], message: str, timeout_s: float = 10, poll_s: float = 0.05
) -> None:
    """Poll ``condition`` until it is truthy; fail with ``message`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(poll_s)
