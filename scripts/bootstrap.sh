#!/usr/bin/env bash
# Make sure this machine can build the virtualenv: Python >= 3.11 with venv, a C++ compiler and
# cmake (llama-cpp-python compiles llama.cpp), run the tests: redis-server (the router tests
# start their own on free ports), and run the stack: prometheus and prometheus-node-exporter
# (`polyllm up` starts its own), and build and test the web UI: node >= 18 with npm, and Chromium
# for its browser tests (optional: without it they are skipped). As root on Debian, installs what
# is missing; otherwise says what to install.
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
command -v prometheus >/dev/null || missing+=(prometheus)
command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)' 2>/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
optional=()
[[ -x /usr/bin/chromium ]] || optional+=(chromium)
[[ ${#missing[@]} -eq 0 && ${#optional[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]} ${optional[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" "${optional[@]}"
  # These packages may start system services on the ports the stack's own processes use
  # (Redis 6379, Prometheus 9090, node exporter 9100); `polyllm up` starts its own and the tests
  # use free ports, so none is wanted: stop and disable them (not running is fine too).
  for service in redis-server prometheus prometheus-node-exporter; do
    [[ " ${missing[*]} " == *" $service "* ]] || continue
    systemctl disable --now "$service" >/dev/null 2>&1 \
      || { service "$service" stop >/dev/null 2>&1; update-rc.d "$service" disable >/dev/null 2>&1; } \
      || true
  done
elif [[ ${#missing[@]} -gt 0 ]]; then
  echo "error: install these packages first: ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
  exit 1
else
  echo "note: no Chromium: the UI's browser tests will be skipped (sudo apt-get install chromium)" >&2
fi
