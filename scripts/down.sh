#!/usr/bin/env bash
# Stop exactly the processes `make up` started (by the pids it recorded in .run/).
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
for pidfile in .run/*.pid; do
  name=$(basename "$pidfile" .pid)
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "stopped $name (pid $pid)"
  else
    echo "$name was not running"
  fi
  rm -f "$pidfile" ".run/$name.port"
done
