#!/usr/bin/env bash
# Start the five model services (m1..m5 on ports 8101..8105) as background processes.
# Logs and pid files go to .run/; re-running is harmless; `make down` stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=.run
BIN=.venv/bin
MODELS=${MODELS:-"m1 m2 m3 m4 m5"}
BASE_PORT=${BASE_PORT:-8100}
TIMEOUT_S=${UP_TIMEOUT_S:-300}
mkdir -p "$RUN"

port_of() { echo $((BASE_PORT + ${1#m})); }
alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for m in $MODELS; do
  port=$(port_of "$m")
  if alive "$m"; then
    echo "$m already running (pid $(cat "$RUN/$m.pid"), port $port)"
    continue
  fi
  if port_busy "$port"; then
    echo "error: port $port (for $m) is taken by another process; free it or set BASE_PORT" >&2
    exit 1
  fi
  # setsid: the service outlives this shell; its pid file is how `make down` finds it.
  setsid "$BIN/polyllm" serve-model --model "$m" --port "$port" >"$RUN/$m.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$m.pid"
  echo "started $m (pid $!, port $port, log $RUN/$m.log)"
done

deadline=$((SECONDS + TIMEOUT_S))
for m in $MODELS; do
  port=$(port_of "$m")
  printf 'waiting for %s on :%s ' "$m" "$port"
  until [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health") == 200 ]]; do
    if ! alive "$m"; then
      printf '\nerror: %s exited; last log lines:\n' "$m" >&2; tail -n 20 "$RUN/$m.log" >&2; exit 1
    fi
    if (( SECONDS > deadline )); then
      printf '\nerror: %s not healthy after %ss; last log lines:\n' "$m" "$TIMEOUT_S" >&2
      tail -n 20 "$RUN/$m.log" >&2; exit 1
    fi
    printf '.'; sleep 1
  done
  echo " ok"
done

echo
for m in $MODELS; do echo "  $m  http://127.0.0.1:$(port_of "$m")  (POST /generate, /v1/chat/completions, GET /health, /metrics)"; done
