#!/usr/bin/env python3
"""Seeds a running `flagstone serve` for bench/edge/run.sh through the admin API.

    seed.py BASE_URL ADMIN_KEY OUT_DIR

Creates the small environment (FEATURES features, whose `GET /api/v1/flags/` body is about
2 kB), waits until the edge serves it, finds the incident environment that
`flagstone bench incident --changes 0` created in the same database, and writes to OUT_DIR:
  keys.env             SMALL_KEY, SMALL_STATE (state id of bench_00), INCIDENT_KEY
  flags.json           the small environment's flags body (the static ceiling serves it)
  unleash-features.json  an equivalent Unleash client features payload (same names, on/off,
                       one `default` strategy each, a variant carrying the value)
"""
import json
import os
import sys
import time

import requests

FEATURES = int(os.environ.get("BENCH_SMALL_FEATURES", "10"))


def main():
    base, admin_key, out = sys.argv[1], sys.argv[2], sys.argv[3]
    s = requests.Session()
    s.headers.update({"Authorization": f"Api-Key {admin_key}"})

    def call(method, path, **kw):
        r = s.request(method, base + path, timeout=30, **kw)
        if r.status_code >= 300:
            sys.exit(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    # The incident environment (created by `flagstone bench incident`): its project is "Incident …".
    projects = call("GET", "/api/v1/projects/?page_size=1000")
    projects = projects["results"] if isinstance(projects, dict) else projects
    incident = [p for p in projects if p["name"].startswith("Incident")]
    if not incident:
        sys.exit("no incident project: run `flagstone bench incident --changes 0` on this database first")
    envs = call("GET", f"/api/v1/environments/?project={incident[0]['id']}")
    envs = envs["results"] if isinstance(envs, dict) else envs
    incident_key = envs[0]["api_key"]

    org = call("POST", "/api/v1/organisations/", json={"name": "Bench"})
    project = call("POST", "/api/v1/projects/", json={"name": "Bench small", "organisation": org["id"]})
    env = call("POST", "/api/v1/environments/", json={"name": "Small", "project": project["id"]})
    key = env["api_key"]
    values = ["blue", 42, True, "a-longer-string-value-for-the-banner", 3.5, "", "v2", 7, False, "dark"]
    for i in range(FEATURES):
        call("POST", f"/api/v1/projects/{project['id']}/features/", json={
            "name": f"bench_{i:02}",
            "initial_value": values[i % len(values)],
            "default_enabled": i % 3 != 2,
            "description": f"Benchmark feature {i}",
        })
    states = call("GET", f"/api/v1/environments/{key}/featurestates/?page_size=1000")
    states = states["results"] if isinstance(states, dict) else states
    # Which state belongs to bench_00: the feature with the lowest id.
    state = min(states, key=lambda st: st["feature"] if isinstance(st["feature"], int) else st["feature"]["id"])

    # Wait until the edge serves the final revision (all FEATURES features).
    deadline = time.time() + 60
    while True:
        r = requests.get(base + "/api/v1/flags/", headers={"X-Environment-Key": key}, timeout=5)
        if r.status_code == 200 and len(r.json()) == FEATURES:
            break
        if time.time() > deadline:
            sys.exit(f"small environment not served after 60 s: {r.status_code} {r.text[:200]}")
        time.sleep(0.05)
    body = r.content
    with open(os.path.join(out, "flags.json"), "wb") as f:
        f.write(body)

    # Unleash: the same names and on/off; the value travels as the payload of a single variant,
    # which is how Unleash clients carry a flag's value.
    features = []
    for item in r.json():
        v = item["feature_state_value"]
        features.append({
            "name": item["feature"]["name"],
            "type": "release",
            "description": item["feature"].get("description") or "",
            "project": "default",
            "enabled": item["enabled"],
            "stale": False,
            "impressionData": False,
            "strategies": [{"name": "default", "parameters": {}, "constraints": []}],
            "variants": [{"name": "value", "weight": 1000, "weightType": "variable", "stickiness": "default",
                          "payload": {"type": "string", "value": json.dumps(v)}}],
        })
    with open(os.path.join(out, "unleash-features.json"), "w") as f:
        json.dump({"version": 1, "features": features, "segments": []}, f)

    with open(os.path.join(out, "keys.env"), "w") as f:
        f.write(f"SMALL_KEY={key}\nSMALL_STATE={state['id']}\nINCIDENT_KEY={incident_key}\n")
    print(f"small environment: {FEATURES} features, flags body {len(body)} bytes; incident key found")


if __name__ == "__main__":
    main()
