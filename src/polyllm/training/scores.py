"""Batch scoring of the collected answers: ``polyllm score``.

Every answer without an error is scored with :func:`polyllm.training.score.score` against its
prompt record and written to ``data/scores.jsonl.gz``, one line per (prompt id, model):
``{id, model, category, scorer, score, correct, extracted, reason}``. ``judge`` answers get
``score`` ``None``. The run is resumable: pairs already in the file are skipped unless
``rescore``, and the file is rewritten atomically every ``checkpoint`` new scores, so a killed run
loses at most one checkpoint's worth of work.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from polyllm.training.dataset import DatasetFileError, load_dataset, load_prompts
from polyllm.training.score import score

logger = logging.getLogger(__name__)

SCORES = Path("data/scores.jsonl.gz")
Pair = tuple[str, str]


@dataclass(frozen=True)
class ScoreRecord:
    """The verdict on one model's answer to one prompt."""

    id: str
    model: str
    category: str
    scorer: str
    score: float | None
    correct: bool | None
    extracted: str | None
    reason: str


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSONL file, gzip-compressed when its name ends in ``.gz``."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``rows`` as gzip JSONL, atomically (a temporary file renamed over ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with gzip.open(partial, "wt", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    partial.replace(path)


def read_scores(path: Path) -> dict[Pair, ScoreRecord]:
    """The scores already written, by (prompt id, model); empty when the file is missing."""
    if not path.exists():
        return {}
    records = (ScoreRecord(**row) for row in read_jsonl(path))
    return {(r.id, r.model): r for r in records}


def load_records(dataset: Path, shared: Path) -> dict[str, dict[str, Any]]:
    """Prompt records by id: the built dataset, completed by the shared public prompts for ids it
    does not hold (answers collected before a rebuild)."""
    records: dict[str, dict[str, Any]] = {}
    if shared.exists():
        records.update({p.id: p.model_dump() for p in load_prompts(shared)})
    if dataset.exists():
        records.update({p.id: p.model_dump() for p in load_dataset(dataset)})
    if not records:
        raise DatasetFileError(f"neither {dataset} nor {shared} exists")
    return records


def latest_answers(answers: Iterable[Mapping[str, Any]]) -> dict[Pair, Mapping[str, Any]]:
    """The last answer without an error for each (prompt id, model)."""
    latest: dict[Pair, Mapping[str, Any]] = {}
    for answer in answers:
        if not answer.get("error") and answer.get("response") is not None:
            latest[(str(answer["id"]), str(answer["model"]))] = answer
    return latest


def score_one(record: Mapping[str, Any], model: str, response: str) -> ScoreRecord:
    """Score one answer (a top-level function, so a process pool can run it)."""
    result = score(record, response)
    return ScoreRecord(
        id=str(record["id"]),
        model=model,
        category=str(record["category"]),
        scorer=str(record["scorer"]),
        score=result.score,
        correct=result.correct,
        extracted=result.extracted,
        reason=result.reason,
    )


@dataclass(frozen=True)
class ScoreRun:
    """What one scoring run did: pairs scored now, already scored (skipped), and answers whose
    prompt id is in no record file (skipped, counted)."""

    scored: int
    skipped: int
    unknown: int


def _results(jobs: list[tuple[dict[str, Any], str, str]], workers: int) -> Iterator[ScoreRecord]:
    if workers <= 1:
        yield from (score_one(*job) for job in jobs)
        return
    pool: Executor
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(score_one, *job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()


def score_answers(
    answers: Iterable[Mapping[str, Any]],
    records: Mapping[str, Mapping[str, Any]],
    output: Path = SCORES,
    *,
    rescore: bool = False,
    workers: int = 2,
    checkpoint: int = 50,
    on_total: Callable[[int], None] | None = None,
    on_scored: Callable[[ScoreRecord], None] | None = None,
) -> ScoreRun:
    """Score every answer not yet in ``output`` (all of them when ``rescore``) and rewrite
    ``output`` with old and new scores."""
    # An answer without a score (an open-ended one scored before the judge existed) is tried again.
    done = {} if rescore else {k: v for k, v in read_scores(output).items() if v.score is not None}
    latest = latest_answers(answers)
    unknown = [pair for pair in latest if pair[0] not in records]
    if unknown:
        logger.warning(
            "%d answers have a prompt id in no record file, e.g. %s", len(unknown), unknown[0]
        )
    jobs = [
        (dict(records[pid]), model, str(answer["response"]))
        for (pid, model), answer in sorted(latest.items())
        if pid in records and (pid, model) not in done
    ]
    if on_total is not None:
        on_total(len(jobs))
    fresh = 0
    for result in _results(jobs, workers):
        done[(result.id, result.model)] = result
        fresh += 1
        if on_scored is not None:
            on_scored(result)
        if fresh % checkpoint == 0:
            write_jsonl(output, (asdict(r) for r in done.values()))
    write_jsonl(output, (asdict(r) for _, r in sorted(done.items())))
    return ScoreRun(
        scored=fresh, skipped=len(latest) - len(jobs) - len(unknown), unknown=len(unknown)
    )
