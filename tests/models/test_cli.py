"""The ``polyllm models`` CLI, with a tiny model added to the catalog."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyllm.models import catalog
from polyllm.models.catalog import CATALOG, ModelSpec
from polyllm.models.cli import models_app
from tests.models.fakes import DATA, OTHER, leftovers

SpecFactory = Callable[..., ModelSpec]


# --- CLI ------------------------------------------------------------------------------------------


@pytest.fixture
def fake_catalog(
    tmp_path: Path, spec_factory: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Adds model ``t1`` (a tiny file) to the catalog; returns the file's path."""
    monkeypatch.setitem(catalog.CATALOG, "t1", spec_factory("t1", DATA))
    monkeypatch.delenv("MODEL_URI", raising=False)
    src = tmp_path / "t1-source.gguf"
    src.write_bytes(DATA)
    return src


def test_cli_fetch_needs_ids_or_all() -> None:
    result = CliRunner().invoke(models_app, ["fetch"])
    assert result.exit_code == 2
    assert "give model ids" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fetch", "m1", "m2", "--uri", "file:///x"], "--uri needs exactly one model id"),
        (["fetch", "m1", "--all"], "not both"),
        (["fetch", "m9"], "unknown model 'm9'"),
    ],
)
def test_cli_fetch_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(models_app, args)
    assert result.exit_code == 2
    assert message in result.output


def test_cli_fetch_with_model_uri_env_then_list(models_dir: Path, fake_catalog: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        models_app,
        ["fetch", "t1", "--models-dir", str(models_dir), "--no-progress"],
        env={"MODEL_URI": fake_catalog.as_uri()},
    )
    assert result.exit_code == 0, result.output
    assert (models_dir / "t1.gguf").read_bytes() == DATA

    listed = runner.invoke(models_app, ["list", "--models-dir", str(models_dir), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["id"]: row for row in json.loads(listed.output)}
    assert list(rows) == [*CATALOG]
    assert rows["t1"]["present"] and rows["t1"]["verified"]
    assert rows["t1"]["size_bytes"] == len(DATA)
    assert not rows["m1"]["present"]

    table = runner.invoke(models_app, ["list", "--models-dir", str(models_dir)])
    assert table.exit_code == 0
    t1_line = next(line for line in table.output.splitlines() if line.split()[:1] == ["t1"])
    assert t1_line.split()[-4:] == ["yes", "yes", "0.0", hashlib.sha256(DATA).hexdigest()[:12]]


def test_cli_fetch_failure_exits_1_without_traceback(
    tmp_path: Path, models_dir: Path, fake_catalog: Path
) -> None:
    wrong = tmp_path / "wrong.gguf"
    wrong.write_bytes(OTHER)
    result = CliRunner().invoke(
        models_app,
        ["fetch", "t1", "--models-dir", str(models_dir), "--uri", wrong.as_uri(), "--no-progress"],
    )
    assert result.exit_code == 1
    assert "error:" in result.output and "sha256 mismatch" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert leftovers(models_dir) == []
