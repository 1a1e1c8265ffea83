#!/usr/bin/env bash
# Schemathesis on a real `flagstone serve` (a fresh SQLite store):
# 1. the admin API against its own OpenAPI document (the installation key as credentials):
#    generated requests for every operation, checked for server errors (5xx), statuses the
#    document does not list, and bodies that do not match their documented schema;
# 2. the SDK API against Flagsmith's SDK OpenAPI document (../shared/reference/flagsmith-sdk-spec,
#    beside the checkout as in CI), with a server-side key of a seeded environment: valid
#    requests, checked for server errors and for answers that do not match Flagsmith's schemas.
# Bounded: a few examples per operation and a time limit.
# Installs the pinned schemathesis when missing. Builds nothing: set FLAGSTONE_BIN or build
# target/debug/flagstone first. Exits non-zero on any failure.
#
#   tests/openapi/run.sh [extra schemathesis options]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${FLAGSTONE_BIN:-$repo/target/debug/flagstone}"
version="4.32.5"
examples="${SCHEMATHESIS_MAX_EXAMPLES:-10}"

if [ "$(python3 -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" != "$version" ]; then
  python3 -m pip install -q --disable-pip-version-check "schemathesis==$version"
fi

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
key="schemathesis-admin-key-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
FLAGSTONE_ADMIN_KEY="$key" "$bin" serve --database-url "sqlite://$work/st.db" \
  --bind "127.0.0.1:$port" --edge-cache-dir "$work/cache" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/health/liveness" >/dev/null && break
  sleep 0.2
done

# The admin API's own credentials, sent as a header; the report never prints them. Run from the
# scratch directory: schemathesis keeps its state (.schemathesis/) in the working directory.
cd "$work"
timeout 900 st run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --url "http://127.0.0.1:$port" \
  -H "Authorization: Api-Key $key" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance \
  --max-examples "$examples" --seed 1 --workers 2 --no-color "$@" \
  || { echo "schemathesis found failures; the server's log:"; tail -50 "$work/serve.log"; exit 1; }

spec="$repo/../shared/reference/flagsmith-sdk-spec/openapi.yaml"
if [ ! -f "$spec" ]; then
  echo "no $spec: the SDK API check needs ../shared beside the checkout" >&2
  exit 1
fi
# A fresh store for the SDK check: an environment with a plain, a multivariate and a numeric
# feature, a segment override and an identity override, and a server-side key.
kill $server 2>/dev/null || true
wait $server 2>/dev/null || true
rm -rf "$work/st.db"* "$work/cache"
FLAGSTONE_ADMIN_KEY="$key" "$bin" serve --database-url "sqlite://$work/st.db" \
  --bind "127.0.0.1:$port" --edge-cache-dir "$work/cache" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/health/liveness" >/dev/null && break
  sleep 0.2
done
server_key="$(python3 "$here/seed_sdk.py" "http://127.0.0.1:$port" "$key")"
# Valid requests: every answer must match Flagsmith's schemas. Then any requests, valid or
# not: none may get a server error (Flagsmith answers some invalid ones with a 200 its document
# does not describe, e.g. `{"detail": "Missing identifier"}`, and so does Flagstone).
sdk_check() {
  timeout 600 st run "$spec" \
    --url "http://127.0.0.1:$port" \
    -H "X-Environment-Key: $server_key" \
    --phases examples,fuzzing \
    --max-examples "$((examples * 5))" --seed 1 --no-color "$@" \
    || { echo "schemathesis found failures in the SDK API; the server's log:"; tail -50 "$work/serve.log"; exit 1; }
}
sdk_check --mode positive --checks not_a_server_error,response_schema_conformance
sdk_check --mode all --checks not_a_server_error
