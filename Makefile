# PolyLLM — thin wrappers over scripts/ and the `polyllm` CLI.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= inference,s3,router,train,bench,dev
# llama-cpp-python compiles llama.cpp (~9 min on 2 cores) for this machine's CPU;
# scripts/llama-wheel.sh keeps the wheel per CPU, so only the first install on a machine pays for it.
LLAMA := $(findstring inference,$(EXTRAS))
STAMP  := $(VENV)/.installed
# The web UI (ui/): npm is only needed to build it; the router serves ui/dist at /.
UI_DEPS := ui/node_modules/.package-lock.json
UI_DIST := ui/dist/index.html
UI_SRC  := $(shell find ui/src ui/index.html ui/package.json ui/tsconfig.json ui/vite.config.ts -type f 2>/dev/null)

.PHONY: help install models test-models lint test ui ui-deps ui-types up down status bench bench-load clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@PYTHON=$(PYTHON) scripts/bootstrap.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	links=$$([[ -z "$(LLAMA)" ]] || scripts/llama-wheel.sh $(BIN)/python) \
	  && $(BIN)/pip install --quiet --disable-pip-version-check $${links:+--find-links "$$links"} \
	     -e '.[$(EXTRAS)]'
	@touch $@

install: $(STAMP) ## create .venv and install polyllm with its extras

models: $(STAMP) ## fetch and verify all five models (and the router's embedder) into models/
	$(BIN)/polyllm models fetch --all
	$(BIN)/polyllm models embedder

test-models: $(STAMP) ## fetch the models the tests use (m1, the embedder)
	$(BIN)/polyllm models fetch m1
	$(BIN)/polyllm models embedder

lint: $(STAMP) ## ruff (lint + format), mypy, hadolint
	$(BIN)/ruff check src tests scripts/gpu_bench.py
	$(BIN)/ruff format --check src tests scripts/gpu_bench.py
	$(BIN)/mypy
	$(BIN)/hadolint deploy/docker/*.Dockerfile

test: $(STAMP) test-models lint $(UI_DEPS) ## install, fetch m1, lint, run the whole suite (UI included)
	@PYTHON=$(PYTHON) scripts/bootstrap.sh
	$(BIN)/pytest

$(UI_DEPS): ui/package-lock.json
	@PYTHON=$(PYTHON) scripts/bootstrap.sh
	cd ui && npm ci --no-audit --no-fund
	@touch $@

ui-deps: $(UI_DEPS) ## install the web UI's node packages (ui/node_modules)

$(UI_DIST): $(UI_DEPS) $(UI_SRC)
	cd ui && npm run build

ui: $(UI_DIST) ## build the web UI into ui/dist when it is missing or stale

ui-types: $(STAMP) $(UI_DEPS) ## regenerate the UI's types from the router's OpenAPI document
	$(BIN)/python -m polyllm.demo.openapi ui/openapi.json
	cd ui && npm run gen:types

up: $(STAMP) models $(UI_DIST) ## start the stack (polyllm.yaml) in the background, wait until healthy
	@PYTHON=$(PYTHON) scripts/bootstrap.sh
	$(BIN)/polyllm up

down: ## stop what `make up` started
	@test -x $(BIN)/polyllm || { echo "no $(VENV): nothing was started by make up"; exit 0; }
	$(BIN)/polyllm down

status: ## show the services `make up` started: pid, port, health, memory
	@test -x $(BIN)/polyllm || { echo "no $(VENV): run make up"; exit 1; }
	$(BIN)/polyllm status

bench: $(STAMP) models ## measure TTFT and tokens/s of every model (docs/benchmarks/)
	$(BIN)/polyllm bench models

bench-load: $(STAMP) ## CPU load-test baseline on the running stack, quiet machine (~1 h): docs/benchmarks/cpu/
	BIN=$(BIN) benchmarks/cpu_baseline.sh

clean: ## remove caches (keeps .venv and models/)
	rm -rf .mypy_cache .ruff_cache .pytest_cache
