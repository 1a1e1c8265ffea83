#!/usr/bin/env bash
# Issue 2 benchmark, all three engines on the same contexts:
#   1. generate the incident-sized workload (deterministic, seed 2) if absent;
#   2. time Flagsmith's Python engine (writes bench/data/python.json, python_flags.json);
#   3. run the Rust bench: Flagstone vs flagsmith-flag-engine 0.7.0, alternating rounds,
#      printing the ratios against all engines and the agreement checks.
# Extra arguments go to the Rust bench, e.g. `bench/run.sh --rounds 30`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f bench/data/incident.json ] || python3 bench/gen_incident.py
python3 bench/bench_python.py
cargo bench -p flagstone-engine-bench --bench engines -- "$@"
