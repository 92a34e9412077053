"""The continuous-batching plan on its own: who joins, what each decode step carries."""

from __future__ import annotations

import pytest

from polyllm.inference.scheduler import Entry, Scheduler, Sequence, Step


def make(
    n_parallel: int = 2, n_cells: int = 100, n_batch: int = 16, chunk: int = 4
) -> Scheduler[str]:
    return Scheduler(n_parallel=n_parallel, n_cells=n_cells, n_batch=n_batch, prefill_chunk=chunk)


def seq(name: str, n_prompt: int, max_tokens: int = 5) -> Sequence[str]:
    return Sequence(name, list(range(100, 100 + n_prompt)), max_tokens)


def run(scheduler: Scheduler[str], token: int = 7) -> Step[str]:
    """Plan and commit a step, 'sampling' ``token`` for every output."""
    step = scheduler.plan()
    scheduler.commit(step)
    for s, _ in step.outputs:
        s.accept(token)
    return step


def test_a_short_prompt_is_prefilled_in_one_step_and_yields_one_token() -> None:
    scheduler = make()
    a = seq("a", 3)
    scheduler.enqueue(a)
    assert scheduler.admit() == [a]
    step = run(scheduler)
    assert step.entries == [
        Entry(0, 100, 0, False),
        Entry(0, 101, 1, False),
        Entry(0, 102, 2, True),
    ]
    assert step.outputs == [(a, 2)]
    assert (a.n_cached, a.pending, a.n_generated) == (3, 7, 1)
    step = run(scheduler, token=8)
    assert step.entries == [Entry(0, 7, 3, True)]  # the sampled token, at the next position
    assert (a.n_cached, a.pending, a.n_generated) == (4, 8, 2)


def test_alone_a_prompt_takes_the_whole_batch_not_the_chunk() -> None:
    scheduler = make(n_batch=16, chunk=4)
    a = seq("a", 20)
    scheduler.enqueue(a)
    scheduler.admit()
    assert len(run(scheduler).entries) == 16
    step = run(scheduler)
    assert len(step.entries) == 4 and step.outputs == [(a, 3)]


def test_beside_running_streams_a_prompt_is_fed_one_chunk_per_step() -> None:
    scheduler = make(n_parallel=3, chunk=4)
    a = seq("a", 2, max_tokens=50)
    scheduler.enqueue(a)
    scheduler.admit()
    run(scheduler)
    b = seq("b", 10)
    scheduler.enqueue(b)
    assert scheduler.admit() == [b]  # joins between two steps
    sizes = []
    while b.prefilling:
        step = run(scheduler)
        assert step.entries[0] == Entry(a.seq_id, 7, a.n_cached - 1, True)  # a never waits
        sizes.append(len(step.entries) - 1)
    assert sizes == [4, 4, 2]
    assert b.n_generated == 1
    assert len(run(scheduler).entries) == 2  # now both are generating


def test_the_chunk_is_shared_by_newcomers_in_arrival_order() -> None:
    scheduler = make(n_parallel=3, chunk=6)
    a, b, c = seq("a", 1, 9), seq("b", 4), seq("c", 4)
    scheduler.enqueue(a)
    scheduler.admit()
    run(scheduler)
    scheduler.enqueue(b)
    scheduler.enqueue(c)
    scheduler.admit()
    step = run(scheduler)
    assert [e.seq_id for e in step.entries] == [0, 1, 1, 1, 1, 2, 2]
    assert step.outputs == [(a, 0), (b, 4)]  # b's prompt is done, c's is not
    assert (b.n_cached, c.n_cached) == (4, 2)


def test_sequences_wait_for_a_free_id_and_take_the_lowest() -> None:
    scheduler = make(n_parallel=2)
    a, b, c = seq("a", 2), seq("b", 2), seq("c", 2)
    for s in (a, b, c):
        scheduler.enqueue(s)
    assert scheduler.admit() == [a, b]
    assert [s.seq_id for s in (a, b, c)] == [0, 1, -1]
    scheduler.remove(a)
    assert scheduler.admit() == [c]
    assert c.seq_id == 0


def test_kv_cells_are_reserved_for_the_whole_generation_and_given_back() -> None:
    scheduler = make(n_parallel=4, n_cells=30)
    a, big, c = seq("a", 10, 10), seq("big", 20, 5), seq("c", 2, 2)
    for s in (a, big, c):
        scheduler.enqueue(s)
    assert scheduler.admit() == [a]
    assert scheduler.free_cells == 10
    assert list(scheduler.waiting) == [big, c]  # c would fit, but does not overtake big
    scheduler.remove(a)
    assert scheduler.free_cells == 30
    assert scheduler.admit() == [big, c]
    assert scheduler.free_cells == 1


def test_a_waiting_sequence_can_leave_without_touching_the_active_set() -> None:
    scheduler = make(n_parallel=1)
    a, b = seq("a", 2), seq("b", 2)
    scheduler.enqueue(a)
    scheduler.enqueue(b)
    scheduler.admit()
    scheduler.remove(b)
    assert list(scheduler.sequences()) == [a]
    assert scheduler.free_cells == 100 - a.cells
    scheduler.remove(a)
    assert scheduler.idle and scheduler.free_cells == 100


def test_commit_only_after_a_successful_decode() -> None:
    scheduler = make()
    a = seq("a", 3)
    scheduler.enqueue(a)
    scheduler.admit()
    first = scheduler.plan()
    assert scheduler.plan().entries == first.entries  # planning alone changes nothing
    assert a.n_cached == 0


def test_a_generating_sequence_without_a_token_is_a_bug_not_a_silent_skip() -> None:
    scheduler = make()
    a = seq("a", 1)
    scheduler.enqueue(a)
    scheduler.admit()
    scheduler.commit(scheduler.plan())  # prompt in, but nothing sampled
    with pytest.raises(RuntimeError, match="no token"):
        scheduler.plan()


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "match"), [(90, 20, "KV cells"), (0, 5, "prompt"), (3, 0, "prompt")]
)
def test_impossible_sequences_are_refused(prompt: int, max_tokens: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(n_cells=100).enqueue(seq("x", prompt, max_tokens))


def test_the_batch_must_hold_a_token_of_every_sequence() -> None:
    with pytest.raises(ValueError, match="n_batch"):
        make(n_parallel=8, n_batch=4)
