"""Batch scoring: every answer once, error records skipped, resumable; answers stored without a
score (open-ended ones from before the judge existed) are scored again."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from polyllm.training import scores as scores_module
from polyllm.training.scores import ScoreRecord, load_records, read_scores, score_answers


def _record(pid: str, scorer: str, reference: Any, category: str = "math") -> dict[str, Any]:
    return {"id": pid, "category": category, "scorer": scorer, "reference": reference}


RECORDS = {
    "p1": _record("p1", "numeric", "42"),
    "p2": _record("p2", "mc_letter", "B", "knowledge"),
    "p3": _record("p3", "judge", "an essay", "chat"),
}


def _answer(pid: str, model: str, response: str | None, error: str | None = None) -> dict[str, Any]:
    return {"id": pid, "model": model, "response": response, "latency_s": 1.0, "error": error}


ANSWERS = [
    _answer("p1", "m1", "The answer is 42."),
    _answer("p1", "m2", "The answer is 41."),
    _answer("p2", "m1", "Answer: B"),
    _answer("p2", "m2", None, error="HTTPError: boom"),
    _answer("p3", "m1", "Some prose."),
    _answer("unknown/1", "m1", "7"),
]


def test_scores_every_answer_without_error(tmp_path: Path) -> None:
    out = tmp_path / "scores.jsonl.gz"
    run = score_answers(ANSWERS, RECORDS, out, workers=1)
    got = read_scores(out)
    assert run.scored == 4
    assert run.unknown == 1
    assert set(got) == {("p1", "m1"), ("p1", "m2"), ("p2", "m1"), ("p3", "m1")}
    assert got[("p1", "m1")].score == 1.0
    assert got[("p1", "m1")].correct is True
    assert got[("p1", "m2")].score == 0.0
    assert got[("p2", "m1")].extracted == "B"
    judged = got[("p3", "m1")].score
    assert judged is not None and 0.0 <= judged <= 1.0


def test_an_answer_stored_without_a_score_is_scored_again(tmp_path: Path) -> None:
    out = tmp_path / "scores.jsonl.gz"
    old = ScoreRecord("p3", "m1", "chat", "judge", None, None, None, "judge")
    scores_module.write_jsonl(out, [asdict(old)])
    run = score_answers(ANSWERS[4:5], RECORDS, out, workers=1)
    assert run.scored == 1 and read_scores(out)[("p3", "m1")].score is not None


def test_second_run_skips_scored_pairs_unless_rescore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "scores.jsonl.gz"
    score_answers(ANSWERS[:2], RECORDS, out, workers=1)
    calls: list[tuple[str, str]] = []
    real = scores_module.score_one

    def counting(record: dict[str, Any], model: str, response: str) -> ScoreRecord:
        calls.append((str(record["id"]), model))
        return real(record, model, response)

    monkeypatch.setattr(scores_module, "score_one", counting)
    run = score_answers(ANSWERS, RECORDS, out, workers=1)
    assert run.skipped == 2
    assert sorted(calls) == [("p2", "m1"), ("p3", "m1")]
    assert len(read_scores(out)) == 4

    calls.clear()
    rerun = score_answers(ANSWERS, RECORDS, out, workers=1, rescore=True)
    assert rerun.scored == 4
    assert len(calls) == 4


def test_later_answer_replaces_an_earlier_one(tmp_path: Path) -> None:
    out = tmp_path / "scores.jsonl.gz"
    answers = [_answer("p1", "m1", "41"), _answer("p1", "m1", "42")]
    score_answers(answers, RECORDS, out, workers=1)
    assert read_scores(out)[("p1", "m1")].score == 1.0


def test_process_pool_gives_the_same_scores(tmp_path: Path) -> None:
    inline, pooled = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    score_answers(ANSWERS, RECORDS, inline, workers=1)
    score_answers(ANSWERS, RECORDS, pooled, workers=2)
    assert read_scores(inline) == read_scores(pooled)


def test_load_records_prefers_the_built_dataset(tmp_path: Path) -> None:
    common = {"source": "s", "prompt": "q", "scorer": "numeric", "category": "math"}
    shared, dataset = tmp_path / "train.jsonl", tmp_path / "dataset.jsonl"
    shared.write_text(
        "".join(json.dumps({**common, "id": i, "reference": "1"}) + "\n" for i in ("a", "b"))
    )
    built = {**common, "id": "a", "reference": "2", "group": "a", "split": "train"}
    dataset.write_text(json.dumps(built) + "\n")
    records = load_records(dataset, shared)
    assert records["a"]["reference"] == "2"
    assert records["b"]["reference"] == "1"
