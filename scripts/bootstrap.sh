#!/usr/bin/env bash
# Make sure this machine can build the virtualenv: Python >= 3.11 with venv, a C++ compiler and
# cmake (llama-cpp-python compiles llama.cpp), and run the tests: redis-server (the router tests
# start their own on free ports). As root on Debian, installs what is missing; otherwise says
# what to install.
set -euo pipefail
PYTHON=${PYTHON:-python3}
missing=()
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: $PYTHON is missing or older than 3.11" >&2
  exit 1
fi
"$PYTHON" -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
"$PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || missing+=(python3-dev)
command -v g++ >/dev/null || missing+=(build-essential)
command -v cmake >/dev/null || missing+=(cmake)
command -v curl >/dev/null || missing+=(curl)
command -v redis-server >/dev/null || missing+=(redis-server)
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    # the package may start a system Redis on 6379, the port the stack's own Redis uses;
    # the tests start theirs on free ports, so none is wanted (not running is fine too)
    systemctl disable --now redis-server >/dev/null 2>&1 || service redis-server stop >/dev/null 2>&1 || true
  fi
else
  echo "error: install these packages first: ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
