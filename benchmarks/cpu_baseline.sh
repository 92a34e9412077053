#!/usr/bin/env bash
# The CPU load-test baseline of docs/benchmarks/README.md (`make bench-load-cpu`): memory
# bandwidth, then the short and medium workloads at concurrency 1,2,4,8 against every model
# service directly and against the router choosing the model; then the results table.
# Needs the running stack (`make up`) on a quiet machine; about an hour on 2 cores.
# Writes $OUT (docs/benchmarks/cpu/): membw.csv, <workload>-<target>/, results.md.
set -euo pipefail

BIN=${BIN:-.venv/bin}
OUT=${OUT:-docs/benchmarks/cpu}
REQUESTS=${REQUESTS:-16}
LEVELS=${LEVELS:-1,2,4,8}
WORKLOADS=${WORKLOADS:-short medium}

# "<name> <url>" per target, from polyllm.yaml (POLYLLM_STACK moves it): m1..m5, then the router.
mapfile -t TARGETS < <("$BIN/python" - <<'PY'
from polyllm.stack.config import load_stack_config

stack = load_stack_config()
for model, service in stack.models.items():
    print(model, f"http://{stack.host}:{service.port}")
print("router", f"http://{stack.host}:{stack.router.port}")
PY
)

"$BIN/polyllm" bench membw --out "$OUT"
failed=()
for workload in $WORKLOADS; do
    for entry in "${TARGETS[@]}"; do
        read -r name url <<<"$entry"
        echo "== $workload workload, $name ($url)" >&2
        "$BIN/polyllm" bench load --workload "$workload" --target "$url" --concurrency "$LEVELS" \
            --requests "$REQUESTS" --cache off --out "$OUT/$workload-$name" \
            || failed+=("$workload-$name")
    done
done
"$BIN/polyllm" bench load-results "$OUT" >"$OUT/results.md"
echo "wrote $OUT/results.md" >&2
if ((${#failed[@]})); then
    echo "runs with failed requests or that could not run: ${failed[*]}" >&2
    exit 1
fi
