"""``polyllm collect``: every prompt to every distinct model, recorded by prompt id.

Records are appended (one JSON line, flushed, per answer) to a working file, so a killed run
loses at most the answers in flight; a rerun skips every (prompt id, model) pair already answered
without error. ``compact`` folds the working file into the committed, compressed
``data/responses.jsonl.gz``. Prompt text is never stored: join on ``id``.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from polyllm.models.catalog import CATALOG

log = logging.getLogger(__name__)

COMMITTED = Path("data/responses.jsonl.gz")
WORKING = Path(".cache/collect/responses.jsonl")

# Completion budget per category, written into every record: enough for a worked answer,
# short where the answer is a fact or a letter.
MAX_TOKENS = {
    "coding": 384,
    "math": 320,
    "reasoning": 192,
    "knowledge": 64,
    "instruction_following": 384,
    "chat": 384,
}
DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class Answer:
    """One model's answer to one prompt (no prompt text)."""

    id: str
    model: str
    response: str | None
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    latency_s: float
    tokens_per_s: float
    finish_reason: str | None
    model_sha256: str
    settings: dict[str, Any]
    error: str | None
    collected_at: float


def distinct_models(models: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Models that need their own answers, and ``{model: model it inherits from}`` for models
    serving the same file as an earlier one (m5 → m4 by default)."""
    by_sha: dict[str, str] = {}
    inherits: dict[str, str] = {}
    for model in models:
        sha = CATALOG[model].sha256
        if sha in by_sha:
            inherits[model] = by_sha[sha]
        else:
            by_sha[sha] = model
    return list(by_sha.values()), inherits


def read_answers(*paths: Path) -> Iterator[dict[str, Any]]:
    """Every record in the committed file and the working file (either may be missing)."""
    for path in paths:
        if not path.exists():
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            torn = None  # a line that did not parse: fine only if it is the last one
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if torn is not None:
                    raise ValueError(torn)
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    torn = f"{path}:{number}: not a JSON record: {exc}"
                    continue
                yield record
        if torn is not None:  # a collector is writing it, or was killed writing it
            log.warning(
                "skipping a half-written last record", extra={"fields": {"path": str(path)}}
            )


def answered(*paths: Path) -> set[tuple[str, str]]:
    """(prompt id, model) pairs with an answer that is not an error."""
    return {(r["id"], r["model"]) for r in read_answers(*paths) if not r.get("error")}


def order(prompts: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """A fixed, well-mixed order (by a hash of the id), so a partial collection covers every
    category and source evenly."""
    return sorted(prompts, key=lambda p: hashlib.sha256(str(p["id"]).encode()).hexdigest())


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line that a killed collector left half-written (that pair is not answered,
    so it is asked again); appending after it would spoil the next record too."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
        log.warning("dropped a half-written last record", extra={"fields": {"path": str(path)}})


class AnswerLog:
    """The append-only working file: one line per answer, flushed at once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(path)
        self._file = path.open("a", encoding="utf-8")

    def append(self, answer: Answer) -> None:
        self._file.write(json.dumps(asdict(answer), ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


async def engine_settings(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """How the service decodes, recorded with each answer: its ``n_parallel`` (above 1 a greedy
    text can depend on what else was decoding) and ``flash_attn``; None where ``/health`` does
    not say."""
    try:
        health = (await client.get(f"{url}/health", timeout=10)).json()
    except (httpx.HTTPError, ValueError):
        health = {}
    if not isinstance(health, dict):
        health = {}
    return {key: health.get(key) for key in ("n_parallel", "flash_attn")}


# The connection dropped before the service read the request (most likely a kept-alive connection
# the service closed as idle just as the request went out); a greedy generation is safe to repeat.
DROPPED = (httpx.ReadError, httpx.RemoteProtocolError)


async def ask(
    client: httpx.AsyncClient,
    url: str,
    model: str,
    prompt: Mapping[str, Any],
    sha: str,
    engine: Mapping[str, Any] | None = None,
) -> Answer:
    """One greedy generation through a model service; failures become error records (a dropped
    connection is tried once more first). The record's settings are the request's plus
    ``engine`` (:func:`engine_settings`)."""
    max_tokens = MAX_TOKENS.get(str(prompt.get("category")), DEFAULT_MAX_TOKENS)
    request = {"temp": 0.0, "max_tokens": max_tokens, "raw": False, "top_p": 1.0}
    body = {"prompt": prompt["prompt"], "stream": False, **request}
    settings = {**request, **(engine or {})}
    started = time.perf_counter()
    try:
        try:
            resp = await client.post(f"{url}/generate", json=body)
        except DROPPED:
            resp = await client.post(f"{url}/generate", json=body)
        data = resp.json()
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {data.get('error', {}).get('message')}")
    except (httpx.HTTPError, RuntimeError, ValueError) as exc:
        return Answer(
            str(prompt["id"]), model, None, 0, 0, 0.0, time.perf_counter() - started, 0.0, None,
            sha, settings, f"{type(exc).__name__}: {exc}", time.time(),
        )  # fmt: skip
    return Answer(
        str(prompt["id"]), model, data["text"], data["prompt_tokens"], data["completion_tokens"],
        data["ttft_s"], data["latency_s"], data["tokens_per_s"], data["finish_reason"], sha,
        settings, None, time.time(),
    )  # fmt: skip


async def collect(
    prompts: Sequence[Mapping[str, Any]],
    urls: Mapping[str, str],
    log_file: AnswerLog,
    done: set[tuple[str, str]],
    *,
    concurrency: int = 2,
    on_answer: Any = None,
) -> int:
    """Answer every (prompt, model) pair not in ``done``; returns how many were attempted.

    Each model has its own line of prompts (in :func:`order`) and ``concurrency`` requests in
    flight: the slowest model's backlog never holds the others idle (with one shared line, the
    big model's requests soon fill every slot while the small models wait)."""
    lines = {m: deque(p for p in order(prompts) if (str(p["id"]), m) not in done) for m in urls}
    attempted = sum(len(line) for line in lines.values())
    async with httpx.AsyncClient(timeout=600) as client:
        shas = {m: CATALOG[m].sha256 for m in urls}
        engines = {m: await engine_settings(client, url) for m, url in urls.items()}

        async def worker(model: str, line: deque[Mapping[str, Any]]) -> None:
            while line:
                prompt = line.popleft()
                answer = await ask(client, urls[model], model, prompt, shas[model], engines[model])
                log_file.append(answer)
                if on_answer is not None:
                    on_answer(answer)

        workers = [worker(m, line) for m, line in lines.items() for _ in range(max(1, concurrency))]
        await asyncio.gather(*workers)
    return attempted


def compact(committed: Path = COMMITTED, working: Path = WORKING) -> int:
    """Fold the working file into the committed one: the newest good answer per pair (an
    error is kept only where no good answer exists). Returns the number of records written."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for record in read_answers(committed, working):
        key = (record["id"], record["model"])
        if key not in best or best[key].get("error") or not record.get("error"):
            best[key] = record
    committed.parent.mkdir(parents=True, exist_ok=True)
    tmp = committed.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as f:
        for key in sorted(best):
            f.write(json.dumps(best[key], ensure_ascii=False, sort_keys=True) + "\n")
    tmp.replace(committed)
    if working.exists():
        working.unlink()
    return len(best)
