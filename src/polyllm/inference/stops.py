"""Stop strings over a token stream: emit text as soon as it cannot be part of a stop string."""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Feed decoded text in; get back what is safe to stream and whether a stop string ended it.

    A tail that could still grow into a stop string is held back until the next chunk decides it,
    so a stop string never leaks into the output, even when it spans several tokens.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Add ``text``; return the part that can be emitted now (``stopped`` is set on a match)."""
        if self.stopped:
            return ""
        self._pending += text
        cut = min((i for s in self._stops if (i := self._pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            out, self._pending, self.stopped = self._pending[:cut], "", True
            return out
        hold = self._held_tail()
        out = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(self._pending) - hold :]
        return out

    def flush(self) -> str:
        """The held-back tail, at the end of generation (it turned out not to be a stop string)."""
        out, self._pending = self._pending, ""
        return out

    def _held_tail(self) -> int:
        """Length of the longest suffix of the pending text that is a proper prefix of a stop."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(self._pending)), best, -1):
                if self._pending.endswith(stop[:n]):
                    best = n
                    break
        return best
