# polyllm/inference:gpu-ready — the model service with llama.cpp built for NVIDIA GPUs (CUDA).
# The same service, settings and command as inference.Dockerfile, with USE_GPU=true and m5 (the
# GPU tier) as defaults. Without a usable GPU the container stops at start-up and says why; it
# never serves from the CPU while claiming a GPU. No GPU is needed to build it.
#   docker build -f deploy/docker/inference-gpu.Dockerfile \
#       -t polyllm/inference:gpu-ready -t polyllm-model:gpu .
#   docker run --gpus all -p 8105:8105 -v "$PWD/models:/models" polyllm/inference:gpu-ready
# (polyllm-model:gpu is the name deploy/compose.yaml's gpu profile runs.)
#
# CUDA_ARCHITECTURES: the GPUs the kernels are compiled for. 75 T4 (g4dn), 80 A100, 86 A10G (g5),
# 89 L4 (g6), 90 H100/H200. Fewer architectures build faster.

ARG CUDA_VERSION=12.6.3

FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu24.04 AS build
ARG CUDA_ARCHITECTURES="75;80;86;89;90"
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv python3-dev build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# GGML_NATIVE=off: CPU code for any x86-64, not just the build machine's. libcuda comes from the
# toolkit's stubs here and from the driver (NVIDIA Container Toolkit) at run time.
ENV CMAKE_ARGS="-DGGML_CUDA=on -DGGML_NATIVE=off -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES}"
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip wheel --no-cache-dir --no-binary llama-cpp-python \
        --wheel-dir /wheels '.[inference,s3]'

FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu24.04
# libgomp1: llama.cpp's OpenMP threads. The runtime base brings cudart and cuBLAS, and sets
# NVIDIA_DRIVER_CAPABILITIES=compute,utility (utility: nvidia-smi, read for /health and metrics).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 polyllm \
    && mkdir /models && chown polyllm /models
COPY --from=build /wheels /wheels
# Only the wheels built above can be installed (--no-index): their versions are pinned there.
# hadolint ignore=DL3013
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links=/wheels \
        'polyllm[inference,s3]' \
    && rm -rf /wheels
COPY run_llama.sh /app/run_llama.sh

ENV PATH=/opt/venv/bin:$PATH \
    MODEL_ID=m5 \
    PORT=8105 \
    HOST=0.0.0.0 \
    USE_GPU=true \
    POLYLLM_MODELS_DIR=/models \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /home/polyllm
VOLUME ["/models"]
EXPOSE 8105
# /health is 503 while the model loads and warms up, 200 once it can generate.
HEALTHCHECK --interval=10s --timeout=3s --start-period=300s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['PORT']}/health\", timeout=2)"]
CMD ["polyllm", "serve-model"]
