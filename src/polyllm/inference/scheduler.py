"""Continuous batching as pure bookkeeping: which tokens go into the next llama.cpp decode.

Sequences wait in arrival order until a sequence id and their KV cells are free, then join the
active set between two decode steps; a finished or cancelled one leaves at once and gives both
back. Each step carries the pending token of every generating sequence and spends the rest of
the batch on prompt tokens of newcomers, at most ``prefill_chunk`` of them while others are
generating: a long prompt then delays the running streams by one chunk per step instead of by
its whole length (chunked prefill).

The KV cells are one pool shared by all sequences (llama.cpp's unified KV cache): a sequence
reserves ``prompt + max_tokens`` cells when it joins, so a decode can never run out of room, and
one request may use the whole context while the others are short.

Nothing here touches llama.cpp, so the policy is tested on its own (tests/inference).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

J = TypeVar("J")


@dataclass(eq=False)
class Sequence(Generic[J]):
    """One request's tokens as the scheduler sees them; ``state`` is the caller's own."""

    state: J
    prompt: list[int]
    max_tokens: int
    seq_id: int = -1
    """llama.cpp sequence id while active, -1 while waiting."""
    n_cached: int = 0
    """Tokens already in the KV cache (prompt, then generated tokens fed back)."""
    pending: int | None = None
    """The last sampled token, to be decoded in the next step."""
    n_generated: int = 0

    @property
    def cells(self) -> int:
        """KV cells reserved for the whole generation."""
        return len(self.prompt) + self.max_tokens

    @property
    def prefilling(self) -> bool:
        """True until every prompt token is in the KV cache."""
        return self.n_cached < len(self.prompt)

    def accept(self, token: int) -> None:
        """Record a sampled token; it is decoded in the next step."""
        self.pending = token
        self.n_generated += 1


@dataclass(frozen=True)
class Entry:
    """One token of a decode batch."""

    seq_id: int
    token: int
    pos: int
    logits: bool


@dataclass
class Step(Generic[J]):
    """One planned decode: the batch, and which entries yield a token for which sequence."""

    entries: list[Entry] = field(default_factory=list)
    outputs: list[tuple[Sequence[J], int]] = field(default_factory=list)
    """(sequence, index of its entry with logits) for each sequence that samples after it."""
    advances: list[tuple[Sequence[J], int]] = field(default_factory=list)
    """(sequence, tokens it puts into the KV cache)."""

    @property
    def n_sequences(self) -> int:
        """Distinct sequences in the batch."""
        return len(self.advances)


class Scheduler(Generic[J]):
    """The waiting line, the active set and the plan of each decode step."""

    def __init__(self, *, n_parallel: int, n_cells: int, n_batch: int, prefill_chunk: int) -> None:
        if n_batch < n_parallel:
            raise ValueError("n_batch must hold one token of every active sequence")
        self.n_parallel = n_parallel
        self.n_cells = n_cells
        self.n_batch = n_batch
        self.prefill_chunk = prefill_chunk
        self.waiting: deque[Sequence[J]] = deque()
        self.active: list[Sequence[J]] = []
        self._free_ids = set(range(n_parallel))
        self._free_cells = n_cells

    @property
    def idle(self) -> bool:
        """Nothing to decode and nobody waiting."""
        return not self.active and not self.waiting

    @property
    def free_cells(self) -> int:
        """KV cells not reserved by an active sequence."""
        return self._free_cells

    def sequences(self) -> Iterator[Sequence[J]]:
        """Active then waiting sequences (a snapshot: removing while iterating is fine)."""
        yield from [*self.active, *self.waiting]

    def enqueue(self, seq: Sequence[J]) -> None:
        """Add a sequence at the end of the waiting line."""
        if seq.cells > self.n_cells:
            raise ValueError(f"needs {seq.cells} KV cells; the context has {self.n_cells}")
        if not seq.prompt or seq.max_tokens < 1:
            raise ValueError("a sequence needs a prompt and at least one token to generate")
        self.waiting.append(seq)

    def admit(self) -> list[Sequence[J]]:
        """Move waiting sequences into the active set, in arrival order, while an id and their
        cells are free; the first that does not fit stops the line (no overtaking)."""
        joined: list[Sequence[J]] = []
        while self.waiting and self._free_ids and self.waiting[0].cells <= self._free_cells:
            seq = self.waiting.popleft()
            seq.seq_id = min(self._free_ids)
            self._free_ids.remove(seq.seq_id)
            self._free_cells -= seq.cells
            self.active.append(seq)
            joined.append(seq)
        return joined

    def remove(self, seq: Sequence[J]) -> None:
        """Take a sequence out, active or waiting, giving back its id and cells."""
        if seq in self.active:
            self.active.remove(seq)
            self._free_ids.add(seq.seq_id)
            self._free_cells += seq.cells
        else:
            self.waiting.remove(seq)

    def plan(self) -> Step[J]:
        """The next decode: every generating sequence's pending token, then prompt tokens."""
        step: Step[J] = Step()
        prefilling = [s for s in self.active if s.prefilling]
        for seq in self.active:
            if seq.prefilling:
                continue
            if seq.pending is None:
                raise RuntimeError(f"sequence {seq.seq_id} has no token to decode")
            step.outputs.append((seq, len(step.entries)))
            step.entries.append(Entry(seq.seq_id, seq.pending, seq.n_cached, logits=True))
            step.advances.append((seq, 1))
        budget = self.n_batch - len(step.entries)
        if step.entries:
            budget = min(budget, self.prefill_chunk)
        for seq in prefilling:
            take = min(budget, len(seq.prompt) - seq.n_cached)
            if take <= 0:
                break
            done = seq.n_cached + take == len(seq.prompt)
            for pos in range(seq.n_cached, seq.n_cached + take):
                last = done and pos == len(seq.prompt) - 1
                if last:
                    step.outputs.append((seq, len(step.entries)))
                step.entries.append(Entry(seq.seq_id, seq.prompt[pos], pos, logits=last))
            step.advances.append((seq, take))
            budget -= take
        return step

    def commit(self, step: Step[J]) -> None:
        """The step was decoded: its tokens are in the KV cache."""
        for seq, n in step.advances:
            if not seq.prefilling:
                seq.pending = None
            seq.n_cached += n
