#!/usr/bin/env bash
# Print a directory holding a llama-cpp-python wheel compiled for this machine's CPU, building it
# first when there is none (about 9 min on 2 cores).
#
# llama-cpp-python is published as source only and compiles llama.cpp for the CPU it is built
# on: a wheel from one CPU can die with "Illegal instruction" on another. pip's own wheel cache
# keys on the source archive only, so a machine that keeps ~/.cache but gets another CPU would
# reuse a wrong wheel; these wheels are keyed by the cmake flags instead. CMAKE_ARGS (e.g. a
# CUDA build) replaces the CPU flags of scripts/ggml-cpu-flags.sh.
set -euo pipefail
python=${1:-python3}
[[ $python == /* || $python != */* ]] || python=$PWD/$python  # before the cd below
cd "$(dirname "$0")/.."
version=$(grep -oP '"llama-cpp-python==\K[^"]+' pyproject.toml)
export CMAKE_ARGS=${CMAKE_ARGS:-$(scripts/ggml-cpu-flags.sh)}
key=$(echo "$version $CMAKE_ARGS" | sha256sum | cut -c1-16)
dir=${XDG_CACHE_HOME:-$HOME/.cache}/polyllm/llama-cpp-python/$key
if ! compgen -G "$dir/llama_cpp_python-$version-*.whl" >/dev/null; then
  echo "compiling llama-cpp-python $version ($CMAKE_ARGS; about 9 min on 2 cores) into $dir" >&2
  mkdir -p "$dir.tmp"
  "$python" -m pip wheel --quiet --disable-pip-version-check --no-cache-dir --no-deps \
    "llama-cpp-python==$version" -w "$dir.tmp" >&2
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
echo "$dir"
