#!/usr/bin/env bash
# Show each service `make up` started: pid, port, health, resident memory.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
printf '%-7s %-8s %-6s %-8s %s\n' service pid port health rss
for pidfile in .run/*.pid; do
  name=$(basename "$pidfile" .pid); pid=$(cat "$pidfile"); port=$(cat ".run/$name.port" 2>/dev/null || echo -)
  if kill -0 "$pid" 2>/dev/null; then
    if [[ $name == redis ]]; then
      health=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'PING\r\n' >&3 && read -r -t 1 r <&3 && echo "${r%$'\r'}") 2>/dev/null || echo down)
    else
      health=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" || true)
    fi
    rss=$(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' "/proc/$pid/status")
  else
    health=down; rss=-
  fi
  printf '%-7s %-8s %-6s %-8s %s\n' "$name" "$pid" "$port" "$health" "$rss"
done
