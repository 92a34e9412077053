# polyllm-model:latest — one image for every model service (CPU).
# The model is chosen at run time by MODEL_ID (m1..m5) or MODEL_PATH; files live on the
# /models volume (`polyllm models fetch` fills it; MODEL_URI fetches a missing file at start-up).
#   docker build -f deploy/docker/inference.Dockerfile -t polyllm-model:latest .
#   docker run -p 8101:8101 -v "$PWD/models:/models" -e MODEL_ID=m1 polyllm-model:latest

FROM python:3.11-slim-bookworm AS build
# llama-cpp-python compiles llama.cpp from source. Not for the build host's CPU (-march=native):
# an image moves between hosts (Kubernetes nodes), and a native build from an AMX or AVX-512 host
# dies with "Illegal instruction" on a CPU without them. GGML_NATIVE=OFF builds ggml's x86-64
# baseline (AVX2, FMA, F16C), which every x86 server of the last decade runs.
ARG CMAKE_ARGS="-DGGML_NATIVE=OFF"
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[inference,s3]'

FROM python:3.11-slim-bookworm
# libgomp1: llama.cpp's OpenMP threads.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 polyllm \
    && mkdir /models && chown polyllm /models
COPY --from=build /wheels /wheels
# Only the wheels built above can be installed (--no-index): their versions are pinned there.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-index --find-links=/wheels 'polyllm[inference,s3]' \
    && rm -rf /wheels
COPY run_llama.sh /app/run_llama.sh

ENV MODEL_ID=m1 \
    PORT=8101 \
    HOST=0.0.0.0 \
    POLYLLM_MODELS_DIR=/models \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /home/polyllm
VOLUME ["/models"]
EXPOSE 8101
# /health is 503 while the model loads and warms up, 200 once it can generate.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['PORT']}/health\", timeout=2)"]
CMD ["polyllm", "serve-model"]
