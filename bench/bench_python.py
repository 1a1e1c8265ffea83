#!/usr/bin/env python3
"""Times Flagsmith's Python engine (`pip install flagsmith-flag-engine`) on the same
workloads as `flagstone-engine-bench`:

  (a) the conformance cases in ../shared/engine-test-data/test_cases/ (each case's
      context, identity included, evaluated once per round);
  (b) the incident-sized environment of bench/gen_incident.py: every identity
      evaluated as `{**environment, "identity": identity}`.

Prints ns per evaluation and writes them to bench/data/python.json, which the Rust
bench binary reads to print the ratios.

Usage: python3 bench/bench_python.py [--rounds 3] [--conformance-rounds 200]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time

from flag_engine.engine import get_evaluation_result

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CASES = os.path.join(HERE, "..", "..", "shared", "engine-test-data", "test_cases")


def load_case(path: str) -> dict:
    with open(path) as f:
        text = f.read()
    # .jsonc cases carry leading `//` comment lines only.
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    return json.loads(text)["context"]


def time_conformance(cases_dir: str, rounds: int) -> dict:
    paths = sorted(glob.glob(os.path.join(cases_dir, "*.json")) + glob.glob(os.path.join(cases_dir, "*.jsonc")))
    if not paths:
        sys.exit(f"no conformance cases in {cases_dir}")
    contexts = [load_case(p) for p in paths]
    for ctx in contexts:  # warm-up (regex and semver caches, imports)
        get_evaluation_result(ctx)
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for ctx in contexts:
            get_evaluation_result(ctx)
        per_round.append((time.perf_counter_ns() - start) / len(contexts))
    return {
        "cases": len(contexts),
        "rounds": rounds,
        "ns_per_eval_median": statistics.median(per_round),
        "ns_per_eval_min": min(per_round),
    }


def time_incident(path: str, rounds: int, limit: int | None, flags_out: str | None) -> dict:
    with open(path) as f:
        data = json.load(f)
    env = data["environment"]
    identities = data["identities"][:limit] if limit else data["identities"]
    for ident in identities[:20]:  # warm-up
        get_evaluation_result({**env, "identity": ident})
    per_round = []
    matched = 0
    # enabled + value of every flag for every identity (untimed), for the Rust bench's
    # three-way agreement check.
    if flags_out:
        dump = {}
        for ident in identities:
            result = get_evaluation_result({**env, "identity": ident})
            dump[ident["identifier"]] = {k: [f["enabled"], f["value"]] for k, f in result["flags"].items()}
        with open(flags_out, "w") as f:
            json.dump(dump, f, separators=(",", ":"))
    for r in range(rounds):
        start = time.perf_counter_ns()
        for ident in identities:
            result = get_evaluation_result({**env, "identity": ident})
            if r == 0:
                matched += len(result["segments"])
        per_round.append((time.perf_counter_ns() - start) / len(identities))
    return {
        "identities": len(identities),
        "rounds": rounds,
        "ns_per_eval_median": statistics.median(per_round),
        "ns_per_eval_min": min(per_round),
        "matched_segments_per_identity": matched / len(identities),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=DEFAULT_CASES)
    parser.add_argument("--incident", default=os.path.join(HERE, "data", "incident.json"))
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all identities (b)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N identities (b)")
    parser.add_argument("--conformance-rounds", type=int, default=200)
    parser.add_argument("--out", default=os.path.join(HERE, "data", "python.json"))
    args = parser.parse_args()

    from importlib.metadata import version

    report = {
        "engine": f"flagsmith-flag-engine (Python) {version('flagsmith-flag-engine')}",
        "python": sys.version.split()[0],
    }
    report["conformance"] = time_conformance(args.cases, args.conformance_rounds)
    c = report["conformance"]
    print(
        f"python (a) conformance: {c['cases']} cases x {c['rounds']} rounds: "
        f"{c['ns_per_eval_median']:,.0f} ns/eval (median of rounds), {c['ns_per_eval_min']:,.0f} min"
    )
    flags_out = os.path.join(os.path.dirname(os.path.abspath(args.out)), "python_flags.json")
    report["incident"] = time_incident(args.incident, args.rounds, args.limit, flags_out)
    b = report["incident"]
    print(
        f"python (b) incident: {b['identities']} identities x {b['rounds']} rounds: "
        f"{b['ns_per_eval_median']:,.0f} ns/eval (median of rounds), {b['ns_per_eval_min']:,.0f} min; "
        f"{b['matched_segments_per_identity']:.1f} matching segments/identity"
    )
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
