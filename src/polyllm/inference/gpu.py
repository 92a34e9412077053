"""What the model service knows of the GPU: whether llama.cpp can offload to one, which devices
this process sees, and their utilisation and memory.

Devices are read with ``nvidia-smi`` (installed with the NVIDIA driver; inside a container the
NVIDIA Container Toolkit mounts it when ``NVIDIA_DRIVER_CAPABILITIES`` includes ``utility``, as
in the CUDA base images). Without it the service still runs on the GPU, but cannot name the
device and exports no GPU metrics: nothing is made up.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

QUERY_FIELDS = ("index", "name", "utilization.gpu", "memory.used", "memory.total")
"""What :func:`read_gpus` asks ``nvidia-smi --query-gpu`` for, in this order."""
_MIB = 1024 * 1024
_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class GpuSample:
    """One GPU as ``nvidia-smi`` reports it at one moment; None where it reports no value."""

    index: str
    name: str
    utilization: float | None
    """Fraction of the last sample period a kernel ran (0..1)."""
    memory_used_bytes: int | None
    memory_total_bytes: int | None


def gpu_offload_problem() -> str | None:
    """Why llama.cpp cannot offload layers to a GPU in this process, or None when it can."""
    from llama_cpp import llama_print_system_info, llama_supports_gpu_offload

    if llama_supports_gpu_offload():
        return None
    # A CUDA build registers its backend (and lists it here) even when it finds no device.
    if "CUDA" in llama_print_system_info().decode(errors="replace"):
        return (
            "llama.cpp is built with CUDA but sees no GPU device (`nvidia-smi` should list one;"
            " in Docker run with --gpus all, on Kubernetes request nvidia.com/gpu)"
        )
    return (
        "this llama-cpp-python build has no GPU backend (install it with"
        " CMAKE_ARGS=-DGGML_CUDA=on, or run the polyllm/inference:gpu-ready image)"
    )


def read_gpus(env: Mapping[str, str] | None = None) -> list[GpuSample]:
    """The GPUs this process may use (``CUDA_VISIBLE_DEVICES`` applies), read with nvidia-smi.

    Empty when nvidia-smi is not installed, fails (no driver) or CUDA is told to see no device.
    """
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    cmd = [binary, f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv,noheader,nounits"]
    visible = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        if not visible.strip():
            return []
        cmd.append(f"--id={visible.strip()}")  # nvidia-smi itself ignores CUDA_VISIBLE_DEVICES
    try:
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("nvidia-smi did not answer: %s", exc)
        return []
    if result.returncode != 0:
        log.debug("nvidia-smi exited with %d: %s", result.returncode, result.stdout.strip())
        return []
    rows = csv.reader(result.stdout.splitlines(), skipinitialspace=True)
    return [_sample(row) for row in rows if len(row) == len(QUERY_FIELDS)]


def describe_devices(gpus: list[GpuSample]) -> str | None:
    """The device names for ``/health``: ``NVIDIA A10G``, or ``2 x NVIDIA A10G``; None if none."""
    if not gpus:
        return None
    names = list(dict.fromkeys(gpu.name for gpu in gpus))
    if len(names) == 1 and len(gpus) > 1:
        return f"{len(gpus)} x {names[0]}"
    return ", ".join(names)


def _sample(row: list[str]) -> GpuSample:
    index, name, utilization, used, total = row
    percent = _number(utilization)
    used_mib, total_mib = _number(used), _number(total)
    return GpuSample(
        index=index,
        name=name,
        utilization=None if percent is None else percent / 100,
        memory_used_bytes=None if used_mib is None else int(used_mib * _MIB),
        memory_total_bytes=None if total_mib is None else int(total_mib * _MIB),
    )


def _number(text: str) -> float | None:
    """A number from nvidia-smi, or None for its ``[N/A]`` / ``[Not Supported]``."""
    try:
        return float(text)
    except ValueError:
        return None


class GpuUnavailable(RuntimeError):
    """``USE_GPU=true``, but llama.cpp cannot offload to a GPU in this process."""


def require_gpu_offload() -> None:
    """Raise :class:`GpuUnavailable`, saying why, unless llama.cpp can offload to a GPU."""
    problem = gpu_offload_problem()
    if problem is not None:
        raise GpuUnavailable(
            f"USE_GPU=true but {problem}; refusing to serve on the CPU while claiming a GPU"
        )
