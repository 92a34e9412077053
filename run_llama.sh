#!/usr/bin/env bash
# Serve one GGUF file: ./run_llama.sh MODEL_PATH [PORT]
# The model id comes from MODEL_ID, or from a file named models/<id>.gguf.
# USE_GPU=true offloads every layer (and fails loudly without a GPU); N_THREADS, N_CTX,
# QUEUE_MAX and the other settings are read from the environment as usual.
set -euo pipefail
if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 MODEL_PATH [PORT]" >&2
  exit 2
fi
model_path=$1
port=${2:-${PORT:-8101}}
model_id=${MODEL_ID:-$(basename "$model_path" .gguf)}
here=$(cd "$(dirname "$0")" && pwd)
polyllm=${POLYLLM:-$here/.venv/bin/polyllm}
[[ -x $polyllm ]] || polyllm=polyllm
# USE_GPU in the spellings the service's settings accept; anything else is an error here, never
# a run on the CPU.
use_gpu=${USE_GPU:-false}
case ${use_gpu,,} in
  true | t | yes | y | on | 1) gpu_flag=--use-gpu ;;
  false | f | no | n | off | 0) gpu_flag=--no-use-gpu ;;
  *)
    echo "$0: USE_GPU must be true or false, got '$use_gpu'" >&2
    exit 2
    ;;
esac
exec "$polyllm" serve-model --model "$model_id" --model-path "$model_path" --port "$port" \
  --host "${HOST:-127.0.0.1}" "$gpu_flag"
