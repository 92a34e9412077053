#!/usr/bin/env bash
# The GPU check, on a machine with an NVIDIA GPU (driver installed, `nvidia-smi` works):
#   1. installs llama-cpp-python built with CUDA into its own venv (.venv-gpu; the CPU .venv is
#      left alone), from source with the CUDA toolkit (nvcc), or from a wheel you built before
#      (LLAMA_WHEEL=path/to/llama_cpp_python-…whl, e.g. on a machine without internet);
#   2. fetches m4 and m5 (or uses models/ as it is: POLYLLM_MODELS_DIR);
#   3. runs the `gpu` tests (a real service on the GPU: /health names the device, the weights are
#      in GPU memory, GPU metrics are exported), where a missing GPU is a failure, not a skip;
#   4. measures TTFT and tokens/s of m4 and m5 on the CPU and on the GPU of this host and writes
#      docs/benchmarks/gpu/gpu-latency{.csv,-summary.csv,.md}.
#
#   scripts/gpu-check.sh                   # everything
#   MODELS=m5 REPEATS=5 scripts/gpu-check.sh
#   CUDA_ARCHITECTURES=90 scripts/gpu-check.sh   # compile for this GPU only (faster)
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${GPU_VENV:-.venv-gpu}
models=${MODELS:-m4,m5}
models_dir=${POLYLLM_MODELS_DIR:-models}
llama_version=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)
export POLYLLM_MODELS_DIR=$models_dir

step() { printf '\n== %s\n' "$*"; }

step "the GPU"
command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: no NVIDIA driver here" >&2; exit 1; }
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv

step "llama-cpp-python $llama_version with CUDA in $venv"
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
pip=("$venv/bin/pip" install --disable-pip-version-check)
# The CUDA build first: installing polyllm afterwards finds the pinned version there and keeps it.
if [[ -n ${LLAMA_WHEEL:-} ]]; then
  "${pip[@]}" --force-reinstall "$LLAMA_WHEEL"
elif ! "$venv/bin/python" -c 'import llama_cpp, sys; sys.exit(not llama_cpp.llama_supports_gpu_offload())' 2>/dev/null; then
  command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]] \
    || { echo "no nvcc: install the CUDA toolkit, or give LLAMA_WHEEL" >&2; exit 1; }
  export PATH=$PATH:/usr/local/cuda/bin
  export CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES:-native}"
  "${pip[@]}" --force-reinstall --no-cache-dir --no-binary llama-cpp-python \
    "llama-cpp-python==$llama_version"
fi
"${pip[@]}" --quiet -e '.[inference,s3,dev]'
"$venv/bin/python" - <<'PY'
from polyllm.inference.gpu import gpu_offload_problem, read_gpus
problem = gpu_offload_problem()
if problem:
    raise SystemExit(f"llama.cpp cannot use the GPU: {problem}")
print("llama.cpp offloads to:", ", ".join(g.name for g in read_gpus()))
PY

IFS=, read -r -a model_ids <<<"$models"
step "models: ${model_ids[*]} (and m1, the test model)"
"$venv/bin/polyllm" models fetch m1 "${model_ids[@]}"

step "the gpu tests"
POLYLLM_REQUIRE_GPU=1 POLYLLM_GPU_TEST_MODEL=${model_ids[0]} \
  "$venv/bin/pytest" -m gpu tests/inference/test_gpu_service.py -v -p no:cacheprovider

step "TTFT and tokens/s, CPU and GPU"
"$venv/bin/python" scripts/gpu_bench.py --models "$models" --backends cpu,gpu \
  --repeats "${REPEATS:-3}" --max-tokens "${MAX_TOKENS:-128}" \
  --models-dir "$models_dir" --out docs/benchmarks/gpu
cat docs/benchmarks/gpu/gpu-latency.md
