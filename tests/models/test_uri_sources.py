"""``MODEL_URI`` sources (file, real local HTTP server, S3 through it) on tiny files."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from polyllm.models.catalog import ModelSpec
from polyllm.models.fetch import ChecksumMismatch, FetchError, fetch_model
from tests.models.fakes import DATA, OTHER, leftovers

if TYPE_CHECKING:
    from tests.models.conftest import FileServer

SpecFactory = Callable[..., ModelSpec]


# --- MODEL_URI sources ----------------------------------------------------------------------------


def test_sha_mismatch_removes_temp_file_and_names_both_hashes(
    tmp_path: Path, models_dir: Path, spec_factory: SpecFactory
) -> None:
    spec = spec_factory("t1", DATA)
    src = tmp_path / "wrong.gguf"
    src.write_bytes(OTHER)

    with pytest.raises(ChecksumMismatch) as info:
        fetch_model(spec, models_dir, uri=src.as_uri(), progress=False)

    message = str(info.value)
    assert "'t1'" in message and src.as_uri() in message
    assert spec.sha256 in message and hashlib.sha256(OTHER).hexdigest() in message
    assert leftovers(models_dir) == []


def test_file_uri_of_wrong_size_fails_before_copying(
    tmp_path: Path, models_dir: Path, spec_factory: SpecFactory
) -> None:
    spec = spec_factory("t1", DATA)
    src = tmp_path / "short.gguf"
    src.write_bytes(DATA[:100])
    with pytest.raises(FetchError, match=f"100 bytes, the catalog expects {len(DATA)}"):
        fetch_model(spec, models_dir, uri=src.as_uri(), progress=False)
    assert leftovers(models_dir) == []


def test_missing_file_and_unknown_scheme(
    tmp_path: Path, models_dir: Path, spec_factory: SpecFactory
) -> None:
    spec = spec_factory("t1", DATA)
    with pytest.raises(FetchError, match="cannot open"):
        fetch_model(spec, models_dir, uri=(tmp_path / "nope").as_uri(), progress=False)
    with pytest.raises(FetchError, match="unsupported scheme; use one of https, http, file, s3"):
        fetch_model(spec, models_dir, uri="ftp://example.com/x.gguf", progress=False)
    assert leftovers(models_dir) == []


def test_http_download(
    models_dir: Path, spec_factory: SpecFactory, file_server: FileServer
) -> None:
    spec = spec_factory("t1", DATA)
    file_server.files["model.gguf"] = DATA

    path = fetch_model(spec, models_dir, uri=file_server.url("model.gguf"), progress=True)

    assert path.read_bytes() == DATA
    assert file_server.requests == [("/model.gguf", None)]
    assert leftovers(models_dir) == ["t1.gguf"]


def test_http_resumes_a_part_file_with_range(
    models_dir: Path, spec_factory: SpecFactory, file_server: FileServer
) -> None:
    spec = spec_factory("t1", DATA)
    file_server.files["model.gguf"] = DATA
    models_dir.mkdir()
    (models_dir / "t1.gguf.part").write_bytes(DATA[:3000])

    path = fetch_model(spec, models_dir, uri=file_server.url("model.gguf"), progress=False)

    assert path.read_bytes() == DATA
    assert file_server.requests == [("/model.gguf", "bytes=3000-")]


def test_http_complete_part_file_is_verified_without_downloading(
    models_dir: Path, spec_factory: SpecFactory, file_server: FileServer
) -> None:
    spec = spec_factory("t1", DATA)
    models_dir.mkdir()
    (models_dir / "t1.gguf.part").write_bytes(DATA)

    path = fetch_model(spec, models_dir, uri=file_server.url("model.gguf"), progress=False)

    assert path.read_bytes() == DATA
    assert file_server.requests == []


def test_http_resumes_after_the_connection_drops(
    models_dir: Path,
    spec_factory: SpecFactory,
    file_server: FileServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("polyllm.models.resume.time.sleep", lambda seconds: None)
    spec = spec_factory("t1", DATA)
    file_server.files["model.gguf"] = DATA
    file_server.cut_after = [4096]

    path = fetch_model(spec, models_dir, uri=file_server.url("model.gguf"), progress=False)

    assert path.read_bytes() == DATA
    assert file_server.requests == [("/model.gguf", None), ("/model.gguf", "bytes=4096-")]


def test_http_server_ignoring_range_restarts_cleanly(
    models_dir: Path, spec_factory: SpecFactory, file_server: FileServer
) -> None:
    spec = spec_factory("t1", DATA)
    file_server.files["model.gguf"] = DATA
    file_server.honour_range = False
    models_dir.mkdir()
    (models_dir / "t1.gguf.part").write_bytes(b"garbage")

    path = fetch_model(spec, models_dir, uri=file_server.url("model.gguf"), progress=False)

    assert path.read_bytes() == DATA


def test_http_stale_part_of_another_file_is_redone_once(
    models_dir: Path, spec_factory: SpecFactory, file_server: FileServer
) -> None:
    spec = spec_factory("t1", DATA)
    file_server.files["model.gguf"] = DATA
    models_dir.mkdir()
    (models_dir / "t1.gguf.part").write_bytes(OTHER[:5000])  # a prefix of some other file

    path = fetch_model(spec, models_dir, uri=file_server.url("model.gguf"), progress=False)

    assert path.read_bytes() == DATA
    assert file_server.requests == [("/model.gguf", "bytes=5000-"), ("/model.gguf", None)]


def test_http_wrong_file_after_resume_fails_once_more_and_stops(
    models_dir: Path, spec_factory: SpecFactory, file_server: FileServer
) -> None:
    spec = spec_factory("t1", DATA)
    file_server.files["model.gguf"] = DATA + b"longer than the catalog says"
    models_dir.mkdir()
    (models_dir / "t1.gguf.part").write_bytes(DATA[:5000])

    with pytest.raises(ChecksumMismatch, match="server sends"):
        fetch_model(spec, models_dir, uri=file_server.url("model.gguf"), progress=False)

    assert file_server.requests == [("/model.gguf", "bytes=5000-"), ("/model.gguf", None)]
    assert leftovers(models_dir) == []


def test_http_errors_name_model_source_and_status(
    models_dir: Path, spec_factory: SpecFactory, file_server: FileServer
) -> None:
    spec = spec_factory("t1", DATA)
    with pytest.raises(FetchError, match=r"'t1' from http://127\.0\.0\.1:\d+/gone.gguf: HTTP 404"):
        fetch_model(spec, models_dir, uri=file_server.url("gone.gguf"), progress=False)

    file_server.files["wrong.gguf"] = OTHER
    with pytest.raises(ChecksumMismatch, match="sha256 mismatch"):
        fetch_model(spec, models_dir, uri=file_server.url("wrong.gguf"), progress=False)

    file_server.files["long.gguf"] = DATA + b"x"
    with pytest.raises(ChecksumMismatch, match=f"expected {len(DATA)}"):
        fetch_model(spec, models_dir, uri=file_server.url("long.gguf"), progress=False)
    assert leftovers(models_dir) == []


def test_http_uri_credentials_stay_out_of_errors(
    models_dir: Path, spec_factory: SpecFactory, file_server: FileServer
) -> None:
    spec = spec_factory("t1", DATA)
    uri = file_server.url("gone.gguf?X-Amz-Signature=secret").replace("http://", "http://u:pw@")
    with pytest.raises(FetchError) as info:
        fetch_model(spec, models_dir, uri=uri, progress=False)
    assert "secret" not in str(info.value) and "pw" not in str(info.value)


def test_s3_without_boto3_says_what_to_install(
    models_dir: Path, spec_factory: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` fail
    with pytest.raises(FetchError, match=r"pip install 'polyllm\[s3\]'"):
        fetch_model(spec_factory("t1", DATA), models_dir, uri="s3://bucket/m.gguf", progress=False)
    assert leftovers(models_dir) == []


def test_s3_download_with_boto3(
    models_dir: Path,
    tmp_path: Path,
    spec_factory: SpecFactory,
    file_server: FileServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("boto3")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": file_server.base_url,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    file_server.files["bucket/dir/m.gguf"] = DATA

    path = fetch_model(
        spec_factory("t1", DATA), models_dir, uri="s3://bucket/dir/m.gguf", progress=False
    )

    assert path.read_bytes() == DATA
    assert file_server.requests[-1][0].startswith("/bucket/dir/m.gguf")
    with pytest.raises(FetchError, match="no such object: s3://bucket/nope does not exist"):
        fetch_model(spec_factory("t2", DATA), models_dir, uri="s3://bucket/nope", progress=False)
