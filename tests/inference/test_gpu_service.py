"""A real model service on a real NVIDIA GPU (marker ``gpu``): offloaded, named, measured.

Skipped, saying why, where there is no GPU or llama-cpp-python is a CPU build;
``POLYLLM_REQUIRE_GPU=1`` (set by scripts/gpu-check.sh) turns that skip into a failure.
``POLYLLM_GPU_TEST_MODEL`` picks the model (default m1, the test model).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from polyllm.inference.gpu import describe_devices, gpu_offload_problem, read_gpus
from tests.integration.conftest import MODELS_DIR, Service, launch, stop, wait_healthy

pytestmark = [pytest.mark.gpu, pytest.mark.integration]

MODEL = os.environ.get("POLYLLM_GPU_TEST_MODEL", "m1")


def no_gpu_reason() -> str | None:
    """Why these tests cannot run here, or None."""
    problem = gpu_offload_problem()
    if problem is not None:
        return (
            "needs an NVIDIA GPU and a CUDA build of llama-cpp-python"
            f" (scripts/gpu-check.sh sets one up): {problem}"
        )
    if not read_gpus():
        return "llama.cpp can offload, but nvidia-smi lists no GPU to name and measure"
    return None


@pytest.fixture(scope="module")
def gpu_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The model service with USE_GPU=true, healthy; stopped after the module."""
    reason = no_gpu_reason()
    if reason is not None:
        if os.environ.get("POLYLLM_REQUIRE_GPU") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    if not (MODELS_DIR / f"{MODEL}.gguf").is_file():
        pytest.fail(f"{MODELS_DIR}/{MODEL}.gguf is missing: polyllm models fetch {MODEL}")
    log = tmp_path_factory.mktemp("gpu") / f"{MODEL}.log"
    service = launch(MODEL, log, "--n-ctx", "2048", env={"USE_GPU": "true"})
    try:
        wait_healthy(service, timeout_s=300)
        yield service
    finally:
        stop(service)


def test_health_reports_the_gpu_and_its_name(gpu_service: Service) -> None:
    health = httpx.get(f"{gpu_service.url}/health", timeout=5).json()
    assert health["status"] == "ok" and health["model"] == MODEL
    assert health["backend"] == "gpu"
    assert health["device"] == describe_devices(read_gpus())


def test_the_weights_are_in_gpu_memory(gpu_service: Service) -> None:
    """The process holds GPU memory: offloaded for real, not a CPU run under a GPU label."""
    out = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    used = {int(pid): float(mib) for pid, mib in (line.split(",") for line in out.splitlines())}
    assert used.get(gpu_service.proc.pid, 0) > 50, out


def test_gpu_metrics_are_exported(gpu_service: Service) -> None:
    assert gpu_service.metric("polyllm_model_info", model=MODEL, backend="gpu") == 1
    used = gpu_service.metric("polyllm_model_gpu_memory_used_bytes", model=MODEL, gpu="0")
    total = gpu_service.metric("polyllm_model_gpu_memory_total_bytes", model=MODEL, gpu="0")
    assert 0 < used <= total
    text = httpx.get(f"{gpu_service.url}/metrics", timeout=10).text
    assert "polyllm_model_gpu_utilization_ratio{" in text


def test_generates_on_the_gpu(gpu_service: Service) -> None:
    body = {"prompt": "Count from one to five.", "max_tokens": 32, "temp": 0, "stream": False}
    reply = httpx.post(f"{gpu_service.url}/generate", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    stats = reply.json()
    assert stats["text"].strip() and stats["completion_tokens"] > 0
    assert stats["tokens_per_s"] > 0
