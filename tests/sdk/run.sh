#!/usr/bin/env bash
# Runs real, unchanged Flagsmith SDKs against `flagstone serve` (the release binary):
# Python flagsmith 6.3.0, the OpenFeature Python provider, flagsmith-nodejs and the Rust
# flagsmith crate 3.1.2, and OpenFeature's OFREP providers (Python openfeature-provider-ofrep,
# npm @openfeature/ofrep-provider and @openfeature/ofrep-web-provider). Installs the pinned
# dependencies when missing. Builds nothing of
# Flagstone: set FLAGSTONE_BIN or build target/release/flagstone first.
# Ends with a line `N passed, N failed`; exits non-zero on any failure.
#
#   tests/sdk/run.sh              # every suite
#   tests/sdk/run.sh python node  # some of them (python, node, rust)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export FLAGSTONE_BIN="${FLAGSTONE_BIN:-$repo/target/release/flagstone}"
case "$FLAGSTONE_BIN" in /*) ;; *) FLAGSTONE_BIN="$repo/$FLAGSTONE_BIN" ;; esac

if [ ! -x "$FLAGSTONE_BIN" ]; then
  echo "$FLAGSTONE_BIN not found: run 'cargo build --release -p flagstone' first" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# Python: install the pinned packages only if the installed versions differ.
if ! python3 - "$here/requirements.txt" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
ok = True
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    try:
        ok &= version(name) == want
    except PackageNotFoundError:
        ok = False
sys.exit(0 if ok else 1)
PY
then
  python3 -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi

# Node: install exactly what package-lock.json pins.
if [ ! -d "$here/node/node_modules/flagsmith-nodejs" ] \
  || ! cmp -s "$here/node/package-lock.json" "$here/node/node_modules/.package-lock.json.installed"; then
  (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$here/node/package-lock.json" "$here/node/node_modules/.package-lock.json.installed"
fi

# Rust: the standalone crate fetches flagsmith 3.1.2 from crates.io (Cargo.lock pins the rest).
(cd "$here/rust" && cargo fetch --locked --quiet 2>/dev/null || cargo fetch --quiet)

exec python3 "$here/run_all.py" "$@"
