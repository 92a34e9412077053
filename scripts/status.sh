#!/usr/bin/env bash
# Show each service `make up` started: pid, port, health, resident memory.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_PORT=${BASE_PORT:-8100}
shopt -s nullglob
printf '%-6s %-8s %-6s %-8s %s\n' service pid port health rss
for pidfile in .run/*.pid; do
  m=$(basename "$pidfile" .pid); pid=$(cat "$pidfile"); port=$((BASE_PORT + ${m#m}))
  if kill -0 "$pid" 2>/dev/null; then
    health=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" || true)
    rss=$(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' "/proc/$pid/status")
  else
    health=down; rss=-
  fi
  printf '%-6s %-8s %-6s %-8s %s\n' "$m" "$pid" "$port" "$health" "$rss"
done
