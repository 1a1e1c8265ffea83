#!/usr/bin/env python3
"""Propagation latency for bench/edge/run.sh.

    propagate.py BASE_URL ADMIN_KEY CLIENT_KEY STATE_ID [CHANGES]

One change at a time: PATCH the feature state's value on the admin API, then wait for both
  - an `environment_updated` event on the SSE subscriber (`/sse/environments/{key}/stream`,
    one connection held for the whole run, read line by line in a thread), and
  - `GET /api/v1/flags/` (polled back to back on a kept-alive connection) returning the value;
then the next change. Times are measured from just before the PATCH is sent ("from send") and
from its 200 response ("from commit": the change is committed when the admin API answers).
Prints one JSON line prefixed RESULT.
"""
import http.client
import json
import sys
import threading
import time
from urllib.parse import urlparse

import requests


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    # nearest-rank percentile
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def main():
    base, admin_key, key, state = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    changes = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    u = urlparse(base)

    events = []  # (perf_counter, data)
    cond = threading.Condition()

    def sse():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.request("GET", f"/sse/environments/{key}/stream", headers={"Accept": "text/event-stream"})
        r = conn.getresponse()
        assert r.status == 200, r.status
        while True:
            line = r.readline()
            if not line:
                return
            line = line.decode().rstrip("\r\n")
            if line.startswith("data:"):
                t = time.perf_counter()
                with cond:
                    events.append((t, line[5:].strip()))
                    cond.notify_all()

    threading.Thread(target=sse, daemon=True).start()
    with cond:  # the event sent on connect
        if not cond.wait_for(lambda: events, timeout=10):
            sys.exit("no SSE event on connect")

    admin = requests.Session()
    admin.headers.update({"Authorization": f"Api-Key {admin_key}", "Content-Type": "application/json"})
    sdk = requests.Session()
    sdk.headers.update({"X-Environment-Key": key})
    patch_url = f"{base}/api/v1/environments/{key}/featurestates/{state}/"
    flags_url = f"{base}/api/v1/flags/"

    sse_send, sse_commit, get_send, get_commit, patch_ms, polls = [], [], [], [], [], 0
    missed = 0
    stamp = int(time.time())
    for n in range(changes):
        value = f"prop-{stamp}-{n}"
        needle = f'"feature_state_value":"{value}"'
        with cond:
            seen = len(events)
        t0 = time.perf_counter()
        r = admin.patch(patch_url, data=json.dumps({"feature_state_value": value}), timeout=10)
        t1 = time.perf_counter()
        if r.status_code != 200:
            sys.exit(f"PATCH: {r.status_code} {r.text[:200]}")
        patch_ms.append((t1 - t0) * 1e3)
        deadline = t0 + 10
        got = None
        while True:
            g = sdk.get(flags_url, timeout=5)
            polls += 1
            if needle in g.text.replace(" ", ""):
                got = time.perf_counter()
                break
            if time.perf_counter() > deadline:
                break
        with cond:
            ok = cond.wait_for(lambda: len(events) > seen, timeout=max(0.0, deadline - time.perf_counter()))
            ev = events[seen][0] if ok else None
        if got is None or ev is None:
            missed += 1
            continue
        get_send.append((got - t0) * 1e3)
        get_commit.append((got - t1) * 1e3)
        sse_send.append((ev - t0) * 1e3)
        sse_commit.append((ev - t1) * 1e3)
        # Let the coalescing window close before the next change, so that every change is
        # its own publish (else a change could ride on the previous one's publish).
        time.sleep(0.01)

    def stats(xs):
        return {"p50": round(pct(xs, 50), 2), "p99": round(pct(xs, 99), 2), "max": round(max(xs), 2) if xs else None}

    print("RESULT " + json.dumps({
        "changes": changes, "measured": len(sse_send), "missed": missed,
        "patch_ms": stats(patch_ms),
        "sse_from_send": stats(sse_send), "sse_from_commit": stats(sse_commit),
        "get_from_send": stats(get_send), "get_from_commit": stats(get_commit),
        "flags_polls": polls,
    }))


if __name__ == "__main__":
    main()
