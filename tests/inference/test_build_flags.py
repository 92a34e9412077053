"""scripts/ggml-cpu-flags.sh: llama.cpp is built for the CPU's extensions, never with AMX."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "ggml-cpu-flags.sh"
AVX2_ONLY = "fpu sse4_2 avx avx2 bmi2 fma f16c"
SAPPHIRE_RAPIDS = (
    f"{AVX2_ONLY} avx_vnni avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni "
    "avx512_bf16 amx_bf16 amx_tile amx_int8"
)


def flags(tmp_path: Path, cpuinfo: str) -> dict[str, str]:
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    out = subprocess.run(
        [str(SCRIPT)], env={**os.environ, "CPUINFO": str(path)},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(arg.removeprefix("-D").split("=") for arg in out.split())


def test_avx2_cpu_gets_avx2_and_no_avx512(tmp_path: Path) -> None:
    got = flags(tmp_path, f"processor\t: 0\nflags\t\t: {AVX2_ONLY}\n")
    assert got["GGML_NATIVE"] == "OFF"
    assert got["GGML_AVX2"] == got["GGML_FMA"] == got["GGML_F16C"] == "ON"
    assert got["GGML_AVX512"] == got["GGML_AVX_VNNI"] == "OFF"


def test_amx_cpu_gets_avx512_but_never_amx(tmp_path: Path) -> None:
    got = flags(tmp_path, f"flags\t\t: {SAPPHIRE_RAPIDS}\nflags\t\t: ignored\n")
    assert got["GGML_AVX512"] == got["GGML_AVX512_VNNI"] == got["GGML_AVX512_BF16"] == "ON"
    assert got["GGML_AMX_TILE"] == got["GGML_AMX_INT8"] == got["GGML_AMX_BF16"] == "OFF"


def test_avx512_needs_all_of_its_parts(tmp_path: Path) -> None:
    got = flags(tmp_path, f"flags\t\t: {AVX2_ONLY} avx512f avx512vbmi\n")
    assert got["GGML_AVX512"] == got["GGML_AVX512_VBMI"] == "OFF"


def test_without_x86_flags_llama_cpp_chooses(tmp_path: Path) -> None:
    got = flags(tmp_path, "processor\t: 0\nFeatures\t: fp asimd\n")
    assert got == {"GGML_NATIVE": "ON"}
