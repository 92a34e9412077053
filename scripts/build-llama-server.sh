#!/usr/bin/env bash
# Build llama.cpp's own llama-server from the source that the installed llama-cpp-python release
# vendors (the same llama.cpp commit as our engine), for `polyllm bench models --concurrency` to
# measure beside the model service. Optional: nothing else needs it. About 10 min on 2 cores;
# the binary is kept in .cache/llama-server/<version>/ and a second run only prints its path.
# Needs g++ and cmake (scripts/bootstrap.sh installs them) and the package index (the sdist).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
version=$("$python" -c 'import llama_cpp; print(llama_cpp.__version__)')
dest=.cache/llama-server/$version
bin=$dest/bin/llama-server
if [[ -x $bin ]]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$dest"
echo "fetching the llama-cpp-python $version source (llama.cpp is vendored in it)" >&2
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
  "llama-cpp-python==$version" -d "$dest"
tar xzf "$dest/llama_cpp_python-$version.tar.gz" -C "$dest"
src=$dest/llama_cpp_python-$version/vendor/llama.cpp
# The CPU flags of our llama-cpp-python wheel (scripts/ggml-cpu-flags.sh), no CUDA; static (one
# binary that outlives the build directory); no web UI (it would be downloaded), no curl/openssl
# (no model downloads), only the server target.
read -r -a cpu_flags < <(scripts/ggml-cpu-flags.sh)
cmake -S "$src" -B "$dest/build" -DCMAKE_BUILD_TYPE=Release "${cpu_flags[@]}" \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF >&2
echo "compiling llama-server (about 10 min on 2 cores)" >&2
cmake --build "$dest/build" --target llama-server -j "$(nproc)" >&2
mkdir -p "$dest/bin"
cp "$dest/build/bin/llama-server" "$bin.tmp"
"$bin.tmp" --version >&2 # fails here, not in the benchmark, if it cannot run
mv "$bin.tmp" "$bin"
rm -rf "$dest/build" "$dest/llama_cpp_python-$version" "$dest/llama_cpp_python-$version.tar.gz"
echo "$bin"
