"""Model files in S3, against a real S3-compatible server (moto's, its own process, on loopback):
upload, fetch, wrong bytes rejected, missing objects named, broken and killed downloads resumed
or restarted, and a model service that fetches its file from S3 at start-up."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from polyllm.models.catalog import CATALOG, ModelSpec
from polyllm.models.errors import ChecksumMismatch, FetchError, UploadError
from polyllm.models.fetch import fetch_model, model_status
from polyllm.models.s3 import S3Location, s3_client
from polyllm.models.upload import SHA256_METADATA, upload_model
from tests.models.fakes import DATA, OTHER, leftovers
from tests.models.s3_server import AWS_ENV_UNSET, Proxy, aws_env, moto_server, proxy_to
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
BIG = random.Random(10).randbytes(4 * 1024 * 1024 + 123)  # several S3 reads, odd length
SpecFactory = Callable[..., ModelSpec]


@dataclass
class S3:
    """The test's bucket on the server, and a client that talks to the server directly."""

    url: str
    bucket: str
    client: Any
    env: dict[str, str]

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return self.uri(key)


@pytest.fixture(scope="module")
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture
def s3(s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A fresh bucket; this process's AWS settings point at the server and nowhere else."""
    for name in AWS_ENV_UNSET:
        monkeypatch.delenv(name, raising=False)
    env = aws_env(s3_url, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_url)
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return S3(s3_url, bucket, client, env)


@pytest.fixture
def proxy(s3: S3, monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxy]:
    """The fetcher talks to the server through a proxy that can slow or cut its downloads."""
    with proxy_to(s3.url) as started:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", started.url)
        yield started


def polyllm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real CLI, in its own process, with this process's environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "polyllm", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def custom_m5(data: bytes) -> dict[str, str]:
    """The environment that makes m5 the custom file ``data`` (a real catalog override)."""
    return {
        "POLYLLM_M5_SHA256": hashlib.sha256(data).hexdigest(),
        "POLYLLM_M5_SIZE": str(len(data)),
    }


# -- upload ----------------------------------------------------------------------------------------


def test_upload_then_fetch_with_the_cli(s3: S3, tmp_path: Path) -> None:
    local, fetched = tmp_path / "local", tmp_path / "fetched"
    local.mkdir()
    (local / "m5.gguf").write_bytes(BIG)
    env = custom_m5(BIG)

    up = polyllm("models", "upload", "--to", s3.uri("models/"), "m5", "--models-dir", str(local),
                 "--no-progress", env=env)  # fmt: skip
    assert up.returncode == 0, up.stderr
    assert f"uploaded m5 {s3.uri('models/m5.gguf')}" in up.stdout
    head = s3.client.head_object(Bucket=s3.bucket, Key="models/m5.gguf")
    assert head["ContentLength"] == len(BIG)
    assert head["Metadata"][SHA256_METADATA] == hashlib.sha256(BIG).hexdigest()

    again = polyllm("models", "upload", "--to", s3.uri("models"), "m5", "--models-dir", str(local),
                    "--no-progress", env=env)  # fmt: skip
    assert again.returncode == 0 and "already there m5" in again.stdout

    down = polyllm("models", "fetch", "m5", "--models-dir", str(fetched), "--no-progress",
                   env={**env, "MODEL_URI": s3.uri("models/m5.gguf")})  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert (fetched / "m5.gguf").read_bytes() == BIG
    assert leftovers(fetched) == ["m5.gguf"]


def test_a_file_shared_by_two_models_is_copied_within_s3(
    s3: S3, models_dir: Path, spec_factory: SpecFactory
) -> None:
    models_dir.mkdir()
    first, twin = spec_factory("t4", DATA), spec_factory("t5", DATA)
    for spec in (first, twin):
        (models_dir / f"{spec.id}.gguf").write_bytes(DATA)
    prefix, done = S3Location(s3.bucket, "m"), {}

    results = [upload_model(s, models_dir, prefix, s3_client(), done=done) for s in (first, twin)]

    assert [r.how for r in results] == ["uploaded", "copied"]
    body = s3.client.get_object(Bucket=s3.bucket, Key="m/t5.gguf")
    assert body["Body"].read() == DATA and body["Metadata"][SHA256_METADATA] == first.sha256


def test_upload_refuses_files_that_are_missing_or_wrong(
    s3: S3, models_dir: Path, spec_factory: SpecFactory
) -> None:
    spec, prefix = spec_factory("t1", DATA), S3Location(s3.bucket, "m")
    with pytest.raises(UploadError, match=r"t1\.gguf: it is missing; run: polyllm models fetch t1"):
        upload_model(spec, models_dir, prefix, s3_client(), done={})
    models_dir.mkdir()
    (models_dir / "t1.gguf").write_bytes(OTHER)
    with pytest.raises(UploadError, match="it does not match the catalog"):
        upload_model(spec, models_dir, prefix, s3_client(), done={})
    assert s3.client.list_objects_v2(Bucket=s3.bucket)["KeyCount"] == 0


def test_upload_to_a_missing_bucket_says_so(s3: S3, tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    (local / "m5.gguf").write_bytes(DATA)
    result = polyllm("models", "upload", "--to", "s3://no-such-bucket-here/m", "m5",
                     "--models-dir", str(local), "--no-progress", env=custom_m5(DATA))  # fmt: skip
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "cannot upload model 'm5' to s3://no-such-bucket-here/m/m5.gguf" in message
    assert "no such bucket: 'no-such-bucket-here' does not exist" in message


# -- fetch: wrong or missing -----------------------------------------------------------------------


def test_fetch_rejects_an_object_with_the_wrong_bytes(
    s3: S3, models_dir: Path, spec_factory: SpecFactory
) -> None:
    spec = spec_factory("t1", DATA)
    uri = s3.put("m/t1.gguf", OTHER)  # same size, other sha256
    with pytest.raises(ChecksumMismatch) as info:
        fetch_model(spec, models_dir, uri=uri, progress=False)
    message = str(info.value)
    assert f"cannot fetch model 't1' from {uri}: sha256 mismatch" in message
    assert spec.sha256 in message and hashlib.sha256(OTHER).hexdigest() in message
    assert leftovers(models_dir) == []

    uri = s3.put("m/short.gguf", DATA[:100])
    with pytest.raises(ChecksumMismatch, match=f"the object has 100 bytes, expected {len(DATA)}"):
        fetch_model(spec, models_dir, uri=uri, progress=False)
    assert leftovers(models_dir) == []


def test_fetch_names_a_missing_object_or_bucket(
    s3: S3, models_dir: Path, spec_factory: SpecFactory
) -> None:
    spec = spec_factory("t1", DATA)
    missing = s3.uri("m/nope.gguf")
    with pytest.raises(FetchError, match=f"no such object: {missing} does not exist"):
        fetch_model(spec, models_dir, uri=missing, progress=False)
    with pytest.raises(FetchError, match="no such bucket: 'not-a-bucket' does not exist"):
        fetch_model(spec, models_dir, uri="s3://not-a-bucket/m.gguf", progress=False)
    with pytest.raises(FetchError, match="expected s3://bucket/key"):
        fetch_model(spec, models_dir, uri=f"s3://{s3.bucket}", progress=False)
    assert leftovers(models_dir) == []


def test_fetch_without_credentials_says_where_they_come_from(
    s3: S3, models_dir: Path, spec_factory: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = s3.put("m/t1.gguf", DATA)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(FetchError, match="no AWS credentials: set AWS_PROFILE"):
        fetch_model(spec_factory("t1", DATA), models_dir, uri=uri, progress=False)


# -- fetch: broken off, resumed or restarted -------------------------------------------------------


def test_a_download_cut_off_mid_body_resumes_where_it_stopped(
    s3: S3, proxy: Proxy, models_dir: Path, spec_factory: SpecFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr("polyllm.models.resume.time.sleep", lambda seconds: None)
    uri = s3.put("m/big.gguf", BIG)
    proxy.cut_after = [1_000_000]

    path = fetch_model(spec_factory("t1", BIG), models_dir, uri=uri, progress=False)

    assert path.read_bytes() == BIG
    (first, no_range), (second, ranged) = proxy.gets
    assert first == second == f"/{s3.bucket}/m/big.gguf" and no_range is None
    assert ranged is not None and ranged.startswith("bytes=") and ranged.endswith("-")
    resumed_at = int(ranged.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at < 1_000_000  # only what the cut lost is fetched again
    assert proxy.sent < len(BIG) + 1_000_000


def test_a_killed_fetch_is_resumed_by_the_next_one(s3: S3, proxy: Proxy, tmp_path: Path) -> None:
    uri = s3.put("m/m5.gguf", BIG)
    models = tmp_path / "models"
    part = models / "m5.gguf.part"
    args = ("models", "fetch", "m5", "--models-dir", str(models), "--no-progress")
    env = {**custom_m5(BIG), "MODEL_URI": uri}
    proxy.bytes_per_s = 1_000_000
    with subprocess.Popen(
        [sys.executable, "-m", "polyllm", *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as first:
        wait_until(
            lambda: part.exists() and part.stat().st_size > 500_000,
            "the first fetch wrote nothing",
            timeout_s=60,
        )
        first.send_signal(signal.SIGKILL)
    kept = part.stat().st_size
    assert 0 < kept < len(BIG) and not (models / "m5.gguf").exists()

    proxy.bytes_per_s = None
    second = polyllm(*args, env=env)

    assert second.returncode == 0, second.stderr
    assert (models / "m5.gguf").read_bytes() == BIG
    assert proxy.gets[-1] == (f"/{s3.bucket}/m/m5.gguf", f"bytes={kept}-")
    assert leftovers(models) == ["m5.gguf"]


def test_a_kept_part_of_another_file_is_restarted_from_zero(
    s3: S3, proxy: Proxy, models_dir: Path, spec_factory: SpecFactory
) -> None:
    uri = s3.put("m/t1.gguf", DATA)
    models_dir.mkdir()
    (models_dir / "t1.gguf.part").write_bytes(OTHER[:5000])  # not a prefix of DATA

    path = fetch_model(spec_factory("t1", DATA), models_dir, uri=uri, progress=False)

    assert path.read_bytes() == DATA
    assert [r for _, r in proxy.gets] == ["bytes=5000-", None]


def test_a_complete_but_wrong_part_is_replaced(
    s3: S3, proxy: Proxy, models_dir: Path, spec_factory: SpecFactory
) -> None:
    uri = s3.put("m/t1.gguf", DATA)
    models_dir.mkdir()
    (models_dir / "t1.gguf.part").write_bytes(OTHER)  # full size: verified, rejected, refetched

    path = fetch_model(spec_factory("t1", DATA), models_dir, uri=uri, progress=False)

    assert path.read_bytes() == DATA
    assert [r for _, r in proxy.gets] == [None]


def test_a_part_longer_than_a_custom_file_is_checked_then_restarted(
    s3: S3, proxy: Proxy, models_dir: Path, spec_factory: SpecFactory
) -> None:
    """Of unknown size (a custom m5 without POLYLLM_M5_SIZE), S3 refuses the range."""
    uri = s3.put("m/t1.gguf", DATA)
    models_dir.mkdir()
    (models_dir / "t1.gguf.part").write_bytes(DATA + b"extra")
    spec = spec_factory("t1", DATA)
    unsized = ModelSpec(**{**spec.__dict__, "size_bytes": None})

    path = fetch_model(unsized, models_dir, uri=uri, progress=False)

    assert path.read_bytes() == DATA
    assert [r for _, r in proxy.gets] == [f"bytes={len(DATA) + 5}-", None]


# -- the model service fetches from S3 at start-up -------------------------------------------------


def free_port() -> int:
    from tests.models.s3_server import free_port as port

    return port()


@pytest.mark.integration
def test_model_service_fetches_its_file_from_s3_at_start_up(s3: S3, tmp_path: Path) -> None:
    m1 = REPO / "models"
    if not model_status(CATALOG["m1"], m1).verified:
        pytest.fail("models/m1.gguf is missing: run `make test-models` (make test does it)")
    up = polyllm("models", "upload", "--to", s3.uri("models"), "m1", "--models-dir", str(m1),
                 "--no-progress", env={})  # fmt: skip
    assert up.returncode == 0, up.stderr
    empty, port = tmp_path / "models", free_port()
    cmd = [sys.executable, "-m", "polyllm", "serve-model", "--model", "m1", "--port", str(port),
           "--models-dir", str(empty), "--n-ctx", "512", "--n-threads", "1"]  # fmt: skip
    env = {**os.environ, "MODEL_URI": s3.uri("models/m1.gguf")}
    log = tmp_path / "m1.log"
    with log.open("wb") as out:
        service = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _healthy(port, service), f"m1 not healthy:\n{log.read_text()}", 180)
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
    finally:
        service.terminate()
        service.wait(timeout=30)
    assert health["sha256"] == CATALOG["m1"].sha256[:12]
    assert model_status(CATALOG["m1"], empty).verified


def test_model_service_refuses_a_wrong_file_from_s3(s3: S3, tmp_path: Path) -> None:
    uri = s3.put("models/m5.gguf", OTHER)
    cmd = ("serve-model", "--model", "m5", "--port", str(free_port()),
           "--models-dir", str(tmp_path / "models"))  # fmt: skip
    result = polyllm(*cmd, env={**custom_m5(DATA), "MODEL_URI": uri})
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert f"cannot fetch model 'm5' from {uri}: sha256 mismatch" in message
    assert leftovers(tmp_path / "models") == []


def _healthy(port: int, service: subprocess.Popen[bytes]) -> bool:
    assert service.poll() is None, f"the service exited with {service.returncode}"
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        time.sleep(0.1)
        return False
