#!/usr/bin/env bash
# Issue 5 measurements, end to end (see BENCHMARKS.md, "SDK API / edge (issue 5)"):
#   1. builds target/release/flagstone and static-ceiling (SKIP_BUILD=1 to skip);
#   2. creates the incident environment (`flagstone bench incident --changes 0 --scale 1`) in a
#      fresh SQLite database, starts `flagstone serve` on it, seeds a ~2 kB environment of 10
#      features (seed.py);
#   3. starts the static ceiling (same bytes as the flags body) and, if `unleash-edge` is on
#      PATH or in $UNLEASH_EDGE, Unleash Edge in offline mode with the same 10 features;
#   4. wrk loads, ROUNDS rounds, targets interleaved within each round: flags GET on Flagstone /
#      ceiling / Unleash Edge (`/api/client/features`), identify on the small environment vs Unleash's
#      `/api/frontend` (both evaluate the 10 features per request), then POST /api/v1/identities/ with 5 traits on the incident
#      environment (unique identifiers, unique + transient, fixed identifier);
#   5. propagation (propagate.py, CHANGES changes) with the default debounce, then again on a
#      restarted serve with --publish-debounce-ms $LOW_DEBOUNCE;
#   6. memory: serve's VmRSS/VmHWM, and `flagstone edge` alone on the same database, against
#      the incident document's bytes;
#   7. prints a table (report.py). Everything is stopped on exit. Raw output: $OUT.
# Knobs: DURATION (s, default 10), THREADS (2), CONNS (50), ROUNDS (3), CHANGES (200),
#        LOW_DEBOUNCE (0), PIN=1 (servers on CPU 0, wrk on CPU 1).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/bench/edge"
DURATION="${DURATION:-10}"; THREADS="${THREADS:-2}"; CONNS="${CONNS:-50}"
ROUNDS="${ROUNDS:-3}"; CHANGES="${CHANGES:-200}"; LOW_DEBOUNCE="${LOW_DEBOUNCE:-0}"
OUT="${OUT:-$(mktemp -d /tmp/flagstone-bench-edge.XXXXXX)}"
mkdir -p "$OUT"
RESULTS="$OUT/results.txt"; : > "$RESULTS"
FLAGSTONE="$ROOT/target/release/flagstone"
CEILING="$ROOT/target/release/static-ceiling"
UNLEASH_EDGE="${UNLEASH_EDGE:-$(command -v unleash-edge || true)}"
ADMIN_KEY="bench-edge-admin-key-$RANDOM$RANDOM"
SRV=(); LOADGEN=()
if [ "${PIN:-0}" = 1 ]; then SRV=(taskset -c 0); LOADGEN=(taskset -c 1); fi

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # URL [header] — up to 60 s for a 200
  for _ in $(seq 600); do
    if curl -sf -o /dev/null ${2:+-H "$2"} "$1"; then return 0; fi
    sleep 0.1
  done
  echo "timeout waiting for $1" >&2; return 1
}
mem() { # PID LABEL
  awk -v l="$2" '/^VmRSS|^VmHWM/ {v[$1]=$2} END {printf "MEM %s {\"rss_kib\":%d,\"hwm_kib\":%d}\n", l, v["VmRSS:"], v["VmHWM:"]}' "/proc/$1/status" | tee -a "$RESULTS"
}
load() { # NAME URL MODE KEY [HEADER]
  local name="$1" url="$2" mode="$3" key="$4" header="${5:-X-Environment-Key}" line
  line=$(LOAD_MODE="$mode" LOAD_KEY="$key" LOAD_HEADER="$header" LOAD_TAG="$RANDOM$RANDOM" \
    timeout $((DURATION + 30)) "${LOADGEN[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 5s \
      -s "$HERE/load.lua" "$url" | grep '^RESULT' | sed 's/^RESULT //')
  echo "LOAD $name $line" | tee -a "$RESULTS"
}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  (cd "$ROOT" && cargo build --release -p flagstone -p flagstone-static-ceiling)
fi
command -v wrk >/dev/null || { echo "wrk is required (apt-get install -y wrk)" >&2; exit 1; }
echo "output in $OUT"

DB="sqlite://$OUT/bench.db"
echo "== creating the incident environment"
timeout 300 "$FLAGSTONE" bench incident --database-url "$DB" --changes 0 --scale 1 2>&1 | tee "$OUT/incident.log"

start_serve() { # extra args...
  PORT=$(free_port); BASE="http://127.0.0.1:$PORT"
  RUST_LOG=warn FLAGSTONE_ADMIN_KEY="$ADMIN_KEY" "${SRV[@]}" "$FLAGSTONE" serve --bind "127.0.0.1:$PORT" \
    --database-url "$DB" --edge-cache-dir "$OUT/cache-serve" "$@" >>"$OUT/serve.log" 2>&1 &
  SERVE_PID=$!; PIDS+=("$SERVE_PID")
  wait_http "$BASE/health/liveness"
}
start_serve
python3 "$HERE/seed.py" "$BASE" "$ADMIN_KEY" "$OUT"
# shellcheck disable=SC1091
. "$OUT/keys.env"
wait_http "$BASE/api/v1/flags/" "X-Environment-Key: $INCIDENT_KEY"
curl -sf -H "Authorization: Api-Key $ADMIN_KEY" "$BASE/api/v1/environments/$INCIDENT_KEY/document/" -o "$OUT/incident-document.json"
echo "DOC {\"incident_document_bytes\":$(stat -c %s "$OUT/incident-document.json"),\"small_flags_bytes\":$(stat -c %s "$OUT/flags.json")}" | tee -a "$RESULTS"
sleep 1; mem "$SERVE_PID" serve-loaded

CEIL_PORT=$(free_port)
"${SRV[@]}" "$CEILING" "127.0.0.1:$CEIL_PORT" "$OUT/flags.json" 2>>"$OUT/ceiling.log" &
PIDS+=("$!"); wait_http "http://127.0.0.1:$CEIL_PORT/"

UE_URL=""
if [ -n "$UNLEASH_EDGE" ] && [ -x "$UNLEASH_EDGE" ]; then
  UE_PORT=$(free_port); UE_TOKEN="default:development.bench-edge-client-token"
  UE_FRONT="default:development.bench-edge-frontend-token"
  "${SRV[@]}" "$UNLEASH_EDGE" --port "$UE_PORT" --interface 127.0.0.1 offline \
    --bootstrap-file "$OUT/unleash-features.json" --client-tokens "$UE_TOKEN" --frontend-tokens "$UE_FRONT" >"$OUT/unleash.log" 2>&1 &
  PIDS+=("$!"); UE_PID=$!
  wait_http "http://127.0.0.1:$UE_PORT/api/client/features" "Authorization: $UE_TOKEN"
  curl -s -H "Authorization: $UE_TOKEN" "http://127.0.0.1:$UE_PORT/api/client/features" -o "$OUT/unleash-response.json"
  UE_URL="http://127.0.0.1:$UE_PORT/api/client/features"
  echo "UNLEASH {\"response_bytes\":$(stat -c %s "$OUT/unleash-response.json")}" | tee -a "$RESULTS"
else
  echo "UNLEASH {\"skipped\":\"unleash-edge not found (set UNLEASH_EDGE)\"}" | tee -a "$RESULTS"
fi

echo "== loads: ${ROUNDS} rounds, ${DURATION}s each, ${THREADS} threads, ${CONNS} connections"
for r in $(seq "$ROUNDS"); do
  load flags-flagstone "$BASE/api/v1/flags/" get "$SMALL_KEY"
  load flags-ceiling "http://127.0.0.1:$CEIL_PORT/api/v1/flags/" get none
  if [ -n "$UE_URL" ]; then load flags-unleash "$UE_URL" get "$UE_TOKEN" Authorization; fi
  # Evaluated per request, same 10 features: Flagstone's identify vs Unleash's frontend API.
  load identify-small-fixed "$BASE/api/v1/identities/" identify-fixed "$SMALL_KEY"
  if [ -n "$UE_URL" ]; then
    load frontend-unleash "http://127.0.0.1:$UE_PORT/api/frontend?userId=bench-fixed-user&properties%5Btrait_0%5D=value-5-0" get "$UE_FRONT" Authorization
  fi
done
for r in $(seq "$ROUNDS"); do
  load identify-unique "$BASE/api/v1/identities/" identify-unique "$INCIDENT_KEY"
  load identify-transient "$BASE/api/v1/identities/" identify-transient "$INCIDENT_KEY"
  load identify-fixed "$BASE/api/v1/identities/" identify-fixed "$INCIDENT_KEY"
done
mem "$SERVE_PID" serve-after-loads
# Trait writes behind POST /identities/: persisted, failed, dropped (queue full).
echo "METRICS $(curl -s "$BASE/metrics" | grep -E '^flagstone_edge_trait|^flagstone_edge_identity' | tr '\n' ' ')" | tee -a "$RESULTS"
if [ -n "$UE_URL" ]; then mem "$UE_PID" unleash-after-loads; fi

echo "== propagation, default debounce"
python3 "$HERE/propagate.py" "$BASE" "$ADMIN_KEY" "$SMALL_KEY" "$SMALL_STATE" "$CHANGES" \
  | sed -n 's/^RESULT /PROP default /p' | tee -a "$RESULTS"
stop "$SERVE_PID"

echo "== flagstone edge alone: on an empty database (baseline), then on the bench database"
EDGE_PORT=$(free_port)
RUST_LOG=warn "${SRV[@]}" "$FLAGSTONE" edge --bind "127.0.0.1:$EDGE_PORT" --database-url "sqlite://$OUT/empty.db" \
  --edge-cache-dir "$OUT/cache-empty" >>"$OUT/edge.log" 2>&1 &
EDGE_PID=$!; PIDS+=("$EDGE_PID")
wait_http "http://127.0.0.1:$EDGE_PORT/health/liveness"
sleep 1; mem "$EDGE_PID" edge-empty
stop "$EDGE_PID"
EDGE_PORT=$(free_port)
RUST_LOG=warn "${SRV[@]}" "$FLAGSTONE" edge --bind "127.0.0.1:$EDGE_PORT" --database-url "$DB" \
  --edge-cache-dir "$OUT/cache-edge" >>"$OUT/edge.log" 2>&1 &
EDGE_PID=$!; PIDS+=("$EDGE_PID")
wait_http "http://127.0.0.1:$EDGE_PORT/api/v1/flags/" "X-Environment-Key: $INCIDENT_KEY"
sleep 1; mem "$EDGE_PID" edge-loaded
DURATION=$(( DURATION < 5 ? DURATION : 5 )) load edge-flags "http://127.0.0.1:$EDGE_PORT/api/v1/flags/" get "$INCIDENT_KEY"
DURATION=$(( DURATION < 5 ? DURATION : 5 )) load edge-identify-fixed "http://127.0.0.1:$EDGE_PORT/api/v1/identities/" identify-fixed "$INCIDENT_KEY"
mem "$EDGE_PID" edge-after-loads
stop "$EDGE_PID"

echo "== propagation, --publish-debounce-ms $LOW_DEBOUNCE"
start_serve --publish-debounce-ms "$LOW_DEBOUNCE"
wait_http "$BASE/api/v1/flags/" "X-Environment-Key: $SMALL_KEY"
python3 "$HERE/propagate.py" "$BASE" "$ADMIN_KEY" "$SMALL_KEY" "$SMALL_STATE" "$CHANGES" \
  | sed -n "s/^RESULT /PROP debounce-$LOW_DEBOUNCE /p" | tee -a "$RESULTS"
stop "$SERVE_PID"

python3 "$HERE/report.py" "$RESULTS" | tee "$OUT/report.md"
