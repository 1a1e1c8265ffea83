#!/usr/bin/env python3
"""Summarises bench/edge/run.sh's results.txt as Markdown: medians over rounds, ratios, targets."""
import json
import statistics
import sys
from collections import defaultdict

loads, mems, props, misc = defaultdict(list), {}, {}, {}
for line in open(sys.argv[1]):
    kind, _, rest = line.strip().partition(" ")
    if kind == "LOAD":
        name, _, js = rest.partition(" ")
        if js:
            loads[name].append(json.loads(js))
    elif kind == "MEM":
        name, _, js = rest.partition(" ")
        mems[name] = json.loads(js)
    elif kind == "PROP":
        name, _, js = rest.partition(" ")
        props[name] = json.loads(js)
    elif kind == "METRICS":
        misc[kind] = rest
    elif kind in ("DOC", "UNLEASH"):
        misc[kind] = json.loads(rest)


def med(name, field):
    xs = [r[field] for r in loads.get(name, [])]
    return statistics.median(xs) if xs else None


def fmt(x, p=1):
    return "—" if x is None else f"{x:,.{p}f}"


print("| load (wrk) | rounds | req/s (median) | p50 ms | p99 ms | non-2xx | socket errors |")
print("|---|---|---|---|---|---|---|")
for name in ["flags-flagstone", "flags-ceiling", "flags-unleash", "identify-small-fixed", "frontend-unleash", "identify-unique",
             "identify-transient", "identify-fixed", "edge-flags", "edge-identify-fixed"]:
    if name not in loads:
        continue
    rs = loads[name]
    print(f"| {name} | {len(rs)} | {fmt(med(name, 'rps'), 0)} | {fmt(med(name, 'p50_ms'), 2)} | "
          f"{fmt(med(name, 'p99_ms'), 2)} | {sum(r['non2xx'] for r in rs)} | {sum(r['socket_errors'] for r in rs)} |")

fs, ceil, ue = med("flags-flagstone", "rps"), med("flags-ceiling", "rps"), med("flags-unleash", "rps")
print()
if fs and ceil:
    print(f"- flags GET / static ceiling: **{fs / ceil:.2f}** (target ≥ 0.50)")
if fs and ue:
    print(f"- flags GET / Unleash Edge: **{fs / ue:.2f}x** (target ≥ 1.5x)")
if med("identify-small-fixed", "rps") and med("frontend-unleash", "rps"):
    print(f"- identify (10 features, evaluated) / Unleash frontend API: "
          f"**{med('identify-small-fixed', 'rps') / med('frontend-unleash', 'rps'):.2f}x**")
if "UNLEASH" in misc and "skipped" in misc["UNLEASH"]:
    print(f"- Unleash Edge: {misc['UNLEASH']['skipped']}")
p99s = {n: med(n, "p99_ms") for n in ["flags-flagstone", "identify-unique", "identify-transient", "identify-fixed"] if n in loads}
print("- p99 under load (target < 5 ms): " + ", ".join(f"{n} {v:.2f} ms" for n, v in p99s.items()))

if props:
    print()
    print("| propagation | changes measured | PATCH p50 / p99 ms | SSE event p50 / p99 ms (from send) | "
          "SSE from commit p50 / p99 | flags GET new value p50 / p99 ms (from send) | GET from commit p50 / p99 |")
    print("|---|---|---|---|---|---|---|")
    for name, p in props.items():
        print(f"| {name} | {p['measured']}/{p['changes']} | {p['patch_ms']['p50']} / {p['patch_ms']['p99']} | "
              f"{p['sse_from_send']['p50']} / {p['sse_from_send']['p99']} | "
              f"{p['sse_from_commit']['p50']} / {p['sse_from_commit']['p99']} | "
              f"{p['get_from_send']['p50']} / {p['get_from_send']['p99']} | "
              f"{p['get_from_commit']['p50']} / {p['get_from_commit']['p99']} |")

if mems:
    doc = misc.get("DOC", {}).get("incident_document_bytes")
    print()
    if doc:
        budget = 2 * doc + 20 * 1024 * 1024
        print(f"Incident document: {doc:,} bytes; memory target 2x + 20 MiB = {budget / 1048576:.1f} MiB")
    print()
    print("| process | VmRSS MiB | VmHWM MiB | vs target |")
    print("|---|---|---|---|")
    for name, m in mems.items():
        vs = ""
        if doc and not name.startswith("unleash"):
            vs = f"{m['rss_kib'] * 1024 / budget:.2f}x of budget"
        print(f"| {name} | {m['rss_kib'] / 1024:.1f} | {m['hwm_kib'] / 1024:.1f} | {vs} |")
    if "edge-empty" in mems and "edge-loaded" in mems and doc:
        delta = (mems["edge-loaded"]["rss_kib"] - mems["edge-empty"]["rss_kib"]) * 1024
        print()
        print(f"- `flagstone edge` with the documents loaded minus an empty edge: {delta / 1048576:.1f} MiB "
              f"= {delta / doc:.1f}x the incident document's bytes (the small environment is ~2 kB)")
if "METRICS" in misc:
    print()
    print("Edge counters after the identity loads: `" + misc["METRICS"].strip() + "`")
