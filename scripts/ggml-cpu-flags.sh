#!/usr/bin/env bash
# Print the cmake flags that build llama.cpp for this machine's CPU: every x86 extension the CPU
# reports that ggml can use, except AMX.
#
# Why not llama.cpp's default (-march=native): on a CPU that reports AMX, ggml then multiplies
# quantized weights with AMX tiles, and in a virtual machine whose hypervisor does not keep the
# tile state those instructions die with "Illegal instruction" (seen on this project's 2-core
# Firecracker VMs with Sapphire Rapids-class CPUs). Without AMX, ggml takes its AVX-512 paths.
set -euo pipefail
cpuinfo=${CPUINFO:-/proc/cpuinfo}  # another file in tests
read -r -a have < <(grep -m1 '^flags' "$cpuinfo" | cut -d: -f2) || true
if [[ ${#have[@]} -eq 0 ]]; then
  echo "-DGGML_NATIVE=ON"  # no x86 flags (an ARM CPU reports "Features"): llama.cpp's own choice
  exit 0
fi
has() { local f; for f in "$@"; do [[ " ${have[*]} " == *" $f "* ]] || return 1; done; }
flag() { if has "${@:2}"; then echo -n " -D$1=ON"; else echo -n " -D$1=OFF"; fi; }
echo -n "-DGGML_NATIVE=OFF"
flag GGML_SSE42 sse4_2
flag GGML_AVX avx
flag GGML_AVX2 avx2
flag GGML_BMI2 bmi2
flag GGML_FMA fma
flag GGML_F16C f16c
flag GGML_AVX_VNNI avx_vnni
avx512=(avx512f avx512cd avx512vl avx512dq avx512bw)  # what ggml's AVX512 option compiles for
flag GGML_AVX512 "${avx512[@]}"
flag GGML_AVX512_VBMI "${avx512[@]}" avx512vbmi
flag GGML_AVX512_VNNI "${avx512[@]}" avx512_vnni
flag GGML_AVX512_BF16 "${avx512[@]}" avx512_bf16
echo " -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
