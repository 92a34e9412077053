#!/usr/bin/env bash
# Start the stack as background processes: Redis (:6379), the model services m1..m5
# (:8101..8105) and the router (:8000). Logs, pid and port files go to .run/; re-running is
# harmless (running services are left alone); `make down` stops exactly these processes.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=.run
BIN=.venv/bin
MODELS=${MODELS:-"m1 m2 m3 m4 m5"}
BASE_PORT=${BASE_PORT:-8100}
ROUTER_PORT=${ROUTER_PORT:-8000}
REDIS_PORT=${REDIS_PORT:-6379}
TIMEOUT_S=${UP_TIMEOUT_S:-300}
mkdir -p "$RUN/redis"

alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME PORT COMMAND...: run COMMAND detached (setsid), record its pid and port.
start() {
  local name=$1 port=$2; shift 2
  if alive "$name"; then
    echo "$name already running (pid $(cat "$RUN/$name.pid"), port $port)"
    return
  fi
  if port_busy "$port"; then
    echo "error: port $port (for $name) is taken by another process" >&2
    exit 1
  fi
  setsid "$@" >"$RUN/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$name.pid"
  echo "$port" >"$RUN/$name.port"
  echo "started $name (pid $!, port $port, log $RUN/$name.log)"
}

healthy() {
  local name=$1 port=$2
  if [[ $name == redis ]]; then
    exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
    printf 'PING\r\n' >&3; local reply; read -r -t 1 reply <&3 || true; exec 3>&-
    [[ $reply == +PONG* ]]
  else
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health") == 200 ]]
  fi
}

wait_healthy() {
  local name=$1 port=$2 deadline=$((SECONDS + TIMEOUT_S))
  printf 'waiting for %s on :%s ' "$name" "$port"
  until healthy "$name" "$port"; do
    if ! alive "$name"; then
      printf '\nerror: %s exited; last log lines:\n' "$name" >&2; tail -n 20 "$RUN/$name.log" >&2; exit 1
    fi
    if (( SECONDS > deadline )); then
      printf '\nerror: %s not healthy after %ss; last log lines:\n' "$name" "$TIMEOUT_S" >&2
      tail -n 20 "$RUN/$name.log" >&2; exit 1
    fi
    printf '.'; sleep 1
  done
  echo " ok"
}

start redis "$REDIS_PORT" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN/redis" \
  --save "" --appendonly no
for m in $MODELS; do
  start "$m" $((BASE_PORT + ${m#m})) "$BIN/polyllm" serve-model --model "$m" --port $((BASE_PORT + ${m#m}))
done
registry="{"
for m in $MODELS; do
  tier=${m#m}
  registry+="\"$m\": {\"url\": \"http://127.0.0.1:$((BASE_PORT + tier))\", \"tier\": $tier, \"cost\": $tier, \"host\": \"cpu-node-1\"},"
done
registry="${registry%,}}"
POLYLLM_REGISTRY=$registry REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
  start router "$ROUTER_PORT" "$BIN/polyllm" serve-router --port "$ROUTER_PORT"

wait_healthy redis "$REDIS_PORT"
for m in $MODELS; do wait_healthy "$m" $((BASE_PORT + ${m#m})); done
wait_healthy router "$ROUTER_PORT"

echo
echo "  router  http://127.0.0.1:$ROUTER_PORT  (POST /generate, /v1/chat/completions; GET /health, /models, /metrics)"
for m in $MODELS; do echo "  $m      http://127.0.0.1:$((BASE_PORT + ${m#m}))"; done
echo "  redis   redis://127.0.0.1:$REDIS_PORT/0"
