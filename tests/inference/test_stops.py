from polyllm.inference.stops import StopMatcher


def run(chunks: list[str], stops: list[str]) -> tuple[str, bool]:
    m = StopMatcher(stops)
    out = "".join(m.feed(c) for c in chunks)
    if not m.stopped:
        out += m.flush()
    return out, m.stopped


def test_no_stops_passes_everything_through_at_once() -> None:
    m = StopMatcher([])
    assert m.feed("hello") == "hello"
    assert m.feed(" world") == " world"


def test_stop_inside_one_chunk_cuts_before_it() -> None:
    assert run(["abc\n\nrest"], ["\n\n"]) == ("abc", True)


def test_stop_spanning_chunks_never_leaks() -> None:
    m = StopMatcher(["END"])
    assert m.feed("foo E") == "foo "
    assert m.feed("N") == ""
    assert m.feed("D tail") == ""
    assert m.stopped


def test_false_start_is_released() -> None:
    assert run(["foo E", "Xbar"], ["END"]) == ("foo EXbar", False)


def test_held_tail_released_at_flush() -> None:
    assert run(["answer: EN"], ["END"]) == ("answer: EN", False)


def test_earliest_of_several_stops_wins() -> None:
    assert run(["a;b.c"], [".", ";"]) == ("a", True)


def test_nothing_after_stop() -> None:
    m = StopMatcher(["x"])
    m.feed("axb")
    assert m.feed("more") == ""
