#!/usr/bin/env python3
"""Deterministic generator of the incident-sized evaluation workload (issue 2).

Writes one JSON file:

    {"environment": <EvaluationContext without identity>,
     "identities": [<IdentityContext>, ...]}

which Flagstone's engine, the `flagsmith-flag-engine` 0.7.0 crate and Flagsmith's
Python engine all read as-is (every identity is evaluated as
`{**environment, "identity": identity}`).

Shape: 100 features (about a fifth multivariate, 2-3 variants), 400 segments whose
rules are nested ALL/ANY groups of 3-5 mixed conditions in total (EQUAL, NOT_EQUAL,
GREATER_THAN(_INCLUSIVE), LESS_THAN(_INCLUSIVE), CONTAINS, NOT_CONTAINS, REGEX,
`:semver` comparisons, PERCENTAGE_SPLIT, MODULO, IN with 100 values, IS_SET,
IS_NOT_SET, JSONPath properties), 5,000 segment overrides with distinct priorities,
and 1,000 identities with 5 traits each.

Usage: python3 bench/gen_incident.py [--seed 2] [--out bench/data/incident.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random

N_FEATURES = 100
N_SEGMENTS = 400
N_OVERRIDES = 5_000
N_IDENTITIES = 1_000
TRAITS_PER_IDENTITY = 5
ENV_KEY = "incident_env_key_0001"

PLANS = ["free", "starter", "pro", "business", "enterprise"]
COUNTRIES = [f"C{i:03d}" for i in range(250)]
PLATFORMS = ["ios", "android", "web", "desktop"]
DOMAINS = [f"example{i}.com" for i in range(20)]

# Trait name -> generator of a value for an identity.
TRAIT_NAMES = [
    "plan",
    "country",
    "age",
    "email",
    "app_version",
    "platform",
    "beta",
    "score",
    "org_id",
]


def trait_value(rng: random.Random, name: str, idx: int):
    if name == "plan":
        return rng.choice(PLANS)
    if name == "country":
        return rng.choice(COUNTRIES)
    if name == "age":
        return rng.randint(13, 80)
    if name == "email":
        return f"user{idx}@{rng.choice(DOMAINS)}"
    if name == "app_version":
        return f"{rng.randint(1, 4)}.{rng.randint(0, 9)}.{rng.randint(0, 20)}"
    if name == "platform":
        return rng.choice(PLATFORMS)
    if name == "beta":
        return rng.random() < 0.3
    if name == "score":
        return round(rng.uniform(0, 100), 2)
    if name == "org_id":
        return rng.randint(1, 500)
    raise ValueError(name)


def condition(rng: random.Random) -> dict:
    """One condition, drawn from a mix that resembles real Flagsmith documents."""
    kind = rng.choices(
        [
            "eq_plan",
            "ne_plan",
            "gt_age",
            "lte_age",
            "regex_email",
            "semver",
            "split",
            "in_country",
            "in_org",
            "contains_email",
            "not_contains",
            "modulo",
            "is_set",
            "is_not_set",
            "beta",
            "score",
            "identifier",
        ],
        weights=[10, 3, 8, 4, 8, 8, 8, 6, 4, 4, 2, 2, 3, 2, 4, 4, 3],
    )[0]
    if kind == "eq_plan":
        return {"property": "plan", "operator": "EQUAL", "value": rng.choice(PLANS)}
    if kind == "ne_plan":
        return {"property": "plan", "operator": "NOT_EQUAL", "value": rng.choice(PLANS)}
    if kind == "gt_age":
        op = rng.choice(["GREATER_THAN", "GREATER_THAN_INCLUSIVE"])
        return {"property": "age", "operator": op, "value": str(rng.randint(16, 60))}
    if kind == "lte_age":
        op = rng.choice(["LESS_THAN", "LESS_THAN_INCLUSIVE"])
        return {"property": "age", "operator": op, "value": str(rng.randint(20, 70))}
    if kind == "regex_email":
        pattern = rng.choice(
            [
                r".*@example1\d?\.com$",
                r"^user\d*[02468]@.*",
                r"^user(1|2|3)\d*@example\d\.com$",
                r"@example(7|8|9)\.com",
                r"^[a-z]+\d{3}@",
            ]
        )
        return {"property": "email", "operator": "REGEX", "value": pattern}
    if kind == "semver":
        op = rng.choice(
            ["GREATER_THAN", "GREATER_THAN_INCLUSIVE", "LESS_THAN", "EQUAL", "NOT_EQUAL"]
        )
        version = f"{rng.randint(1, 4)}.{rng.randint(0, 9)}.{rng.randint(0, 5)}"
        return {"property": "app_version", "operator": op, "value": f"{version}:semver"}
    if kind == "split":
        # Legacy (empty property: the identity key) or an explicit JSONPath.
        prop = rng.choice(["", "$.identity.key", "$.identity.identifier"])
        return {"property": prop, "operator": "PERCENTAGE_SPLIT", "value": str(rng.randint(5, 95))}
    if kind == "in_country":
        values = rng.sample(COUNTRIES, 100)
        # Half as a JSON list, half as Flagsmith's classic comma-separated string.
        value = values if rng.random() < 0.5 else ",".join(values)
        return {"property": "country", "operator": "IN", "value": value}
    if kind == "in_org":
        values = [str(v) for v in rng.sample(range(1, 501), 100)]
        value = values if rng.random() < 0.5 else ",".join(values)
        return {"property": "org_id", "operator": "IN", "value": value}
    if kind == "contains_email":
        return {"property": "email", "operator": "CONTAINS", "value": rng.choice(DOMAINS[:10])}
    if kind == "not_contains":
        return {"property": "email", "operator": "NOT_CONTAINS", "value": f"user{rng.randint(1, 9)}"}
    if kind == "modulo":
        return {"property": "org_id", "operator": "MODULO", "value": f"{rng.randint(2, 5)}|0"}
    if kind == "is_set":
        return {"property": rng.choice(TRAIT_NAMES), "operator": "IS_SET", "value": ""}
    if kind == "is_not_set":
        return {"property": rng.choice(TRAIT_NAMES), "operator": "IS_NOT_SET", "value": ""}
    if kind == "beta":
        return {"property": "beta", "operator": "EQUAL", "value": rng.choice(["true", "false"])}
    if kind == "score":
        op = rng.choice(["GREATER_THAN", "LESS_THAN_INCLUSIVE"])
        return {"property": "score", "operator": op, "value": f"{rng.uniform(10, 90):.1f}"}
    if kind == "identifier":
        return {
            "property": "$.identity.identifier",
            "operator": "REGEX",
            "value": rf"^user-\d*{rng.randint(0, 9)}$",
        }
    raise ValueError(kind)


def segment_rules(rng: random.Random) -> list:
    """3-5 conditions in total, in one of the shapes Flagsmith's UI produces."""
    n = rng.randint(3, 5)
    conds = [condition(rng) for _ in range(n)]
    shape = rng.choice(["all_any", "all_flat", "any_all", "nested"])
    if shape == "all_flat":
        # ALL [ ALL [c...] ]
        return [{"type": "ALL", "conditions": [], "rules": [{"type": "ALL", "conditions": conds, "rules": []}]}]
    if shape == "all_any":
        # ALL [ ANY [c1, c2], ANY [c3...] ] : the UI's "AND of OR groups".
        k = rng.randint(1, n - 1)
        return [
            {
                "type": "ALL",
                "conditions": [],
                "rules": [
                    {"type": "ANY", "conditions": conds[:k], "rules": []},
                    {"type": "ANY", "conditions": conds[k:], "rules": []},
                ],
            }
        ]
    if shape == "any_all":
        # ALL [ ANY [ ALL [c1, c2], ALL [c3...] ] ]
        k = rng.randint(1, n - 1)
        return [
            {
                "type": "ALL",
                "conditions": [],
                "rules": [
                    {
                        "type": "ANY",
                        "conditions": [],
                        "rules": [
                            {"type": "ALL", "conditions": conds[:k], "rules": []},
                            {"type": "ALL", "conditions": conds[k:], "rules": []},
                        ],
                    }
                ],
            }
        ]
    # nested: ALL [ c1, ANY [c2, ...], NONE [cn] ]
    return [
        {
            "type": "ALL",
            "conditions": conds[:1],
            "rules": [
                {"type": "ANY", "conditions": conds[1:-1], "rules": []},
                {"type": "NONE", "conditions": conds[-1:], "rules": []},
            ],
        }
    ]


def feature_value(rng: random.Random):
    kind = rng.choice(["str", "int", "bool", "float_str", "empty"])
    if kind == "str":
        return rng.choice(["blue", "green", "red", "control", "on", "off"]) + str(rng.randint(0, 99))
    if kind == "int":
        return rng.randint(0, 10_000)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "float_str":
        return f"{rng.uniform(0, 100):.2f}"
    return ""


def variants(rng: random.Random, fid: int) -> list:
    n = rng.randint(2, 3)
    weights = [30, 30] if n == 2 else [20, 30, 25]
    return [
        {"value": f"variant_{fid}_{i}", "weight": weights[i], "priority": fid * 10 + i}
        for i in range(n)
    ]


def generate(seed: int) -> dict:
    rng = random.Random(seed)
    features = {}
    for fid in range(1, N_FEATURES + 1):
        name = f"feature_{fid:03d}"
        fc = {
            "key": str(10_000 + fid),
            "name": name,
            "enabled": rng.random() < 0.6,
            "value": feature_value(rng),
            "metadata": {"id": fid},
        }
        if rng.random() < 0.2:
            fc["variants"] = variants(rng, fid)
        features[name] = fc

    # 5,000 overrides over 400 segments: each segment overrides a distinct set of
    # features; sizes vary (1..25) and sum to exactly N_OVERRIDES.
    sizes = [1] * N_SEGMENTS
    while sum(sizes) < N_OVERRIDES:
        i = rng.randrange(N_SEGMENTS)
        if sizes[i] < 25:
            sizes[i] += 1
    feature_names = list(features)
    priority = 0
    segments = {}
    for sid in range(1, N_SEGMENTS + 1):
        overrides = []
        for name in rng.sample(feature_names, sizes[sid - 1]):
            base = features[name]
            priority += 1
            ov = {
                "key": base["key"],
                "name": name,
                "enabled": rng.random() < 0.7,
                "value": feature_value(rng),
                # Distinct priorities, drawn so that segment order and priority disagree.
                "priority": rng.randint(0, 1_000_000) * 10_000 + priority,
                "metadata": {"id": base["metadata"]["id"]},
            }
            if "variants" in base and rng.random() < 0.5:
                ov["variants"] = variants(rng, int(base["key"]) - 10_000)
            overrides.append(ov)
        key = str(sid)
        segments[key] = {
            "key": key,
            "name": f"segment_{sid:03d}",
            "rules": segment_rules(rng),
            "overrides": overrides,
            "metadata": {"segment_id": sid, "source": "api"},
        }

    identities = []
    for idx in range(N_IDENTITIES):
        # Every identity has the traits most conditions read, so segments do match;
        # the other three vary, so IS_SET / IS_NOT_SET and missing traits are exercised.
        others = [t for t in TRAIT_NAMES if t not in ("plan", "email")]
        names = ["plan", "email"] + rng.sample(others, TRAITS_PER_IDENTITY - 2)
        traits = {name: trait_value(rng, name, idx) for name in names}
        identifier = f"user-{idx}"
        # The hashing key, set explicitly as Flagsmith's SDKs do: the 0.7.0 crate's
        # PERCENTAGE_SPLIT reads `identity.key` verbatim and would hash "" without it.
        key = f"{ENV_KEY}_{identifier}"
        identities.append({"identifier": identifier, "key": key, "traits": traits})

    environment = {
        "environment": {"key": ENV_KEY, "name": "Incident"},
        "features": features,
        "segments": segments,
    }
    return {"environment": environment, "identities": identities}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=2)
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--out", default=os.path.join(here, "data", "incident.json"))
    args = parser.parse_args()
    data = generate(args.seed)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(data, f, separators=(",", ":"))
    env = data["environment"]
    n_over = sum(len(s["overrides"]) for s in env["segments"].values())
    print(
        f"wrote {args.out}: {len(env['features'])} features, {len(env['segments'])} segments, "
        f"{n_over} overrides, {len(data['identities'])} identities"
    )


if __name__ == "__main__":
    main()
