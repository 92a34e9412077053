"""The GPU pieces that can be checked without a GPU: reading devices through a stand-in
``nvidia-smi`` (a real executable on PATH, speaking the real one's CSV), the GPU gauges, the
start-up refusal on this CPU-only build, run_llama.sh's flags and the CUDA image's settings.
(tests/inference/test_gpu_service.py runs the service on a real GPU, marker ``gpu``.)"""

from __future__ import annotations

import csv
import os
import re
import shlex
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from polyllm.inference import gpu
from polyllm.inference.gpu import GpuSample, describe_devices, gpu_offload_problem, read_gpus
from polyllm.inference.metrics import ModelMetrics
from polyllm.inference.settings import InferenceSettings

REPO = Path(__file__).resolve().parents[2]
GPU_DOCKERFILE = REPO / "deploy/docker/inference-gpu.Dockerfile"

# What `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total
# --format=csv,noheader,nounits` prints on a two-GPU host (values in % and MiB).
TWO_GPUS = "0, NVIDIA A10G, 37, 1843, 23028\n1, NVIDIA A10G, [N/A], 0, 23028\n"


def fake_nvidia_smi(bin_dir: Path, stdout: str, exit_code: int = 0) -> Path:
    """An ``nvidia-smi`` in ``bin_dir`` that prints ``stdout`` and logs its arguments."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "nvidia-smi.out").write_text(stdout)
    script = bin_dir / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{bin_dir}/nvidia-smi.args"\n'
        f'cat "{bin_dir}/nvidia-smi.out"\n'
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir / "nvidia-smi.args"


@pytest.fixture
def smi_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory first on PATH, for a stand-in nvidia-smi; CUDA_VISIBLE_DEVICES unset."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return directory


# -- reading the GPUs ------------------------------------------------------------------------------


def test_read_gpus_parses_nvidia_smi(smi_dir: Path) -> None:
    args = fake_nvidia_smi(smi_dir, TWO_GPUS)
    gpus = read_gpus()
    mib = 1024 * 1024
    assert gpus == [
        GpuSample("0", "NVIDIA A10G", 0.37, 1843 * mib, 23028 * mib),
        GpuSample("1", "NVIDIA A10G", None, 0, 23028 * mib),
    ]
    called = args.read_text().split()
    assert "--query-gpu=index,name,utilization.gpu,memory.used,memory.total" in called
    assert "--format=csv,noheader,nounits" in called
    assert describe_devices(gpus) == "2 x NVIDIA A10G"


def test_read_gpus_asks_only_for_the_devices_cuda_may_use(smi_dir: Path) -> None:
    args = fake_nvidia_smi(smi_dir, TWO_GPUS.splitlines()[1] + "\n")
    assert [g.index for g in read_gpus({"CUDA_VISIBLE_DEVICES": "1"})] == ["1"]
    assert "--id=1" in args.read_text().split()
    # CUDA told to see no device: no GPU, and nvidia-smi is not even asked.
    args.unlink()
    assert read_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert not args.exists()


def test_no_gpus_without_nvidia_smi_or_a_driver(
    smi_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(smi_dir))  # nothing else: no nvidia-smi anywhere
    assert read_gpus() == []
    failed = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"
    fake_nvidia_smi(smi_dir, failed, exit_code=9)
    assert read_gpus() == []


def test_describe_devices() -> None:
    a10g = GpuSample("0", "NVIDIA A10G", None, None, None)
    l4 = GpuSample("1", "NVIDIA L4", None, None, None)
    assert describe_devices([]) is None
    assert describe_devices([a10g]) == "NVIDIA A10G"
    assert describe_devices([a10g, l4]) == "NVIDIA A10G, NVIDIA L4"


# -- GPU metrics -----------------------------------------------------------------------------------


def exposition(metrics: ModelMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_gpu_gauges_are_read_at_each_scrape(smi_dir: Path) -> None:
    fake_nvidia_smi(smi_dir, TWO_GPUS)
    metrics = ModelMetrics("m5", "gpu", gpus=read_gpus)
    text = exposition(metrics)
    assert 'polyllm_model_gpu_utilization_ratio{gpu="0",model="m5"} 0.37' in text
    assert 'polyllm_model_gpu_memory_used_bytes{gpu="0",model="m5"} 1.932525568e+09' in text
    assert 'polyllm_model_gpu_memory_total_bytes{gpu="1",model="m5"} 2.4146608128e+10' in text
    assert 'gpu_utilization_ratio{gpu="1"' not in text  # [N/A]: no sample, not a zero
    fake_nvidia_smi(smi_dir, "0, NVIDIA A10G, 99, 20000, 23028\n")
    assert 'polyllm_model_gpu_utilization_ratio{gpu="0",model="m5"} 0.99' in exposition(metrics)


def test_gpu_gauges_are_absent_when_the_gpu_cannot_be_read(
    smi_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(smi_dir))
    assert "polyllm_model_gpu" not in exposition(ModelMetrics("m5", "gpu", gpus=read_gpus))
    fake_nvidia_smi(smi_dir, TWO_GPUS)
    assert "polyllm_model_gpu" not in exposition(ModelMetrics("m1", "cpu"))


# -- no silent CPU run -----------------------------------------------------------------------------


def test_this_cpu_build_cannot_offload_and_says_what_to_install() -> None:
    problem = gpu_offload_problem()
    assert problem is not None, "this test expects the CPU build of llama-cpp-python"
    assert "no GPU backend" in problem and "GGML_CUDA=on" in problem


def test_a_cuda_build_without_a_device_is_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp

    monkeypatch.setattr(llama_cpp, "llama_supports_gpu_offload", lambda: False)
    monkeypatch.setattr(
        llama_cpp, "llama_print_system_info", lambda: b"CUDA : ARCHS = 860 | CPU : AVX2 = 1 |"
    )
    problem = gpu.gpu_offload_problem()
    assert problem is not None and "built with CUDA but sees no GPU device" in problem


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_model_with_use_gpu_refuses_to_start_on_this_machine(tmp_path: Path) -> None:
    models = tmp_path / "models"
    cmd = [sys.executable, "-m", "polyllm", "serve-model", "--model", "m1", "--use-gpu"]
    cmd += ["--models-dir", str(models), "--port", str(free_port())]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    message = " ".join(result.stderr.split())
    assert "USE_GPU=true but this llama-cpp-python build has no GPU backend" in message
    assert "refusing to serve on the CPU" in message
    assert not models.exists()  # refused before fetching anything


# -- run_llama.sh ----------------------------------------------------------------------------------


def run_llama(tmp_path: Path, use_gpu: str | None) -> subprocess.CompletedProcess[str]:
    """run_llama.sh with a stand-in polyllm that prints the arguments it was given."""
    fake = tmp_path / "polyllm"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "POLYLLM": str(fake)}
    if use_gpu is not None:
        env["USE_GPU"] = use_gpu
    return subprocess.run(
        [str(REPO / "run_llama.sh"), "models/m5.gguf", "8105"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", "on"])
def test_run_llama_passes_the_gpu_flag(tmp_path: Path, value: str) -> None:
    result = run_llama(tmp_path, value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "serve-model", "--model", "m5", "--model-path", "models/m5.gguf", "--port", "8105",
        "--host", "127.0.0.1", "--use-gpu",
    ]  # fmt: skip


@pytest.mark.parametrize("value", [None, "false", "0", "off"])
def test_run_llama_stays_on_the_cpu_when_not_asked(tmp_path: Path, value: str | None) -> None:
    result = run_llama(tmp_path, value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "--no-use-gpu"


def test_run_llama_rejects_an_unclear_use_gpu(tmp_path: Path) -> None:
    result = run_llama(tmp_path, "maybe")
    assert result.returncode == 2
    assert "USE_GPU must be true or false, got 'maybe'" in result.stderr
    assert result.stdout == ""  # the service was never started


# -- the CUDA image --------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """Each stage's instructions, continuation lines joined, comments dropped."""
    text = GPU_DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    stages: list[list[str]] = []
    for line in lines:
        if line.startswith("FROM "):
            stages.append([])
        if stages and line and not line.startswith("#"):
            stages[-1].append(line)
    return stages


def final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in dockerfile_stages()[-1]:
        if line.startswith("ENV "):
            env.update(dict(item.split("=", 1) for item in shlex.split(line[4:])))
    return env


def test_gpu_image_builds_llama_cpp_with_cuda_on_a_cuda_base() -> None:
    build, final = dockerfile_stages()
    assert re.match(r"FROM nvidia/cuda:\$\{CUDA_VERSION\}-devel-ubuntu\d", build[0])
    assert re.match(r"FROM nvidia/cuda:\$\{CUDA_VERSION\}-runtime-ubuntu\d", final[0])
    cmake_args = next(line for line in build if line.startswith("ENV CMAKE_ARGS="))
    assert "-DGGML_CUDA=on" in cmake_args and "-DCMAKE_CUDA_ARCHITECTURES=" in cmake_args
    # Built from source (PyPI has no CUDA wheel of llama-cpp-python), with the pinned version.
    assert any("--no-binary llama-cpp-python" in line for line in build)
    assert "polyllm/inference:gpu-ready" in GPU_DOCKERFILE.read_text()


def test_gpu_image_serves_m5_on_the_gpu_as_a_non_root_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = final_env()
    for name in ("MODEL_ID", "MODEL_PATH", "PORT", "HOST", "USE_GPU", "POLYLLM_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)
    for key, value in env.items():
        if key != "PATH":
            monkeypatch.setenv(key, value)
    settings = InferenceSettings()
    assert (settings.model_id, settings.port, settings.host) == ("m5", 8105, "0.0.0.0")
    assert settings.use_gpu is True
    assert settings.resolved_model_path == Path("/models/m5.gguf")
    final = dockerfile_stages()[-1]
    assert 'CMD ["polyllm", "serve-model"]' in final
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert f"EXPOSE {env['PORT']}" in final
    assert any(line.startswith("HEALTHCHECK ") and "/health" in line for line in final)
    user = next(line.split()[1] for line in final if line.startswith("USER "))
    assert user not in ("root", "0")


# -- the GPU check script --------------------------------------------------------------------------


def test_the_gpu_scripts_pass_shellcheck() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    scripts = [REPO / "scripts/gpu-check.sh", REPO / "run_llama.sh"]
    result = subprocess.run(
        [str(shellcheck), *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.integration
def test_gpu_bench_measures_and_reports_on_the_cpu(tmp_path: Path) -> None:
    """The measuring half of scripts/gpu-check.sh, run where it can be: m1 on the CPU."""
    models = REPO / "models"
    if not (models / "m1.gguf").is_file():
        pytest.fail("models/m1.gguf is missing: run `make test-models` (make test does it)")
    out = tmp_path / "gpu"
    cmd = [sys.executable, str(REPO / "scripts/gpu_bench.py"), "--models", "m1"]
    cmd += ["--backends", "cpu", "--repeats", "1", "--max-tokens", "8"]
    cmd += ["--models-dir", str(models), "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr

    samples = list(csv.DictReader((out / "gpu-latency.csv").read_text().splitlines()))
    assert [(s["model"], s["backend"], s["prompt"]) for s in samples] == [
        ("m1", "cpu", "short"), ("m1", "cpu", "medium"),
    ]  # fmt: skip
    assert all(int(s["completion_tokens"]) == 8 and float(s["ttft_ms"]) > 0 for s in samples)
    summary = list(csv.DictReader((out / "gpu-latency-summary.csv").read_text().splitlines()))
    assert [row["prompt"] for row in summary] == ["short", "medium"]
    assert float(summary[0]["cpu_tok_s"]) > 0 and "gpu_tok_s" not in summary[0]
    assert "| model | prompt |" in (out / "gpu-latency.md").read_text()


def test_gpu_bench_refuses_to_report_cpu_figures_as_gpu_ones(tmp_path: Path) -> None:
    """Asked for the GPU here, the service refuses to start, and nothing is written."""
    out = tmp_path / "gpu"
    cmd = [sys.executable, str(REPO / "scripts/gpu_bench.py"), "--models", "m1"]
    cmd += ["--backends", "gpu", "--models-dir", str(REPO / "models"), "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    assert "m1 service exited with code 1" in result.stderr
    assert not (out / "gpu-latency.csv").exists()
    assert "refusing to serve on the CPU" in (out / "logs/m1-gpu.log").read_text()
