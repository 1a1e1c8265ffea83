"""Runs every SDK compatibility suite against the release binary and prints one closing line,
`N passed, N failed`. Exits non-zero on any failure (or if a suite could not run at all).

Suites (each starts its own seeded `flagstone serve` through flagstone_server.py):
  python  - flagsmith 6.3.0 and the OpenFeature provider (unittest, in a child process)
  node    - flagsmith-nodejs (node --test, TAP)
  rust    - the flagsmith crate 3.1.2 (cargo test in tests/sdk/rust)

`python3 run_all.py python node` runs only the named suites.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(cmd: list, cwd: Path, timeout: int) -> tuple:
    print(f"\n=== {' '.join(cmd)}  (in {cwd.relative_to(HERE.parents[1])})", flush=True)
    started = time.monotonic()
    try:
        p = subprocess.run(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
        )
        out, code = p.stdout, p.returncode
    except OSError as e:  # the tool itself is missing
        out, code = f"cannot run {cmd[0]}: {e}\n", 127
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += f"\n(timed out after {timeout}s)\n"
        code = -1
    print(out, end="", flush=True)
    print(f"=== exit {code} in {time.monotonic() - started:.1f}s", flush=True)
    return code, out


def python_suite() -> tuple:
    code, out = run([sys.executable, "run_tests.py"], HERE / "python", timeout=150)
    m = re.search(r"^PYTHON-RESULT passed=(\d+) failed=(\d+)", out, re.M)
    passed, failed = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if code != 0 and failed == 0:
        failed = 1  # crashed before reporting
    return passed, failed


def node_suite() -> tuple:
    code, out = run(
        ["node", "--test", "--test-reporter=tap", "sdk.test.mjs", "ofrep.test.mjs"], HERE / "node", timeout=120
    )
    def count(name: str) -> int:
        m = re.search(rf"^# {name} (\d+)", out, re.M)
        return int(m.group(1)) if m else 0

    # Tests cancelled because the `before` hook failed count as failed.
    passed, failed = count("pass"), count("fail") + count("cancelled")
    if code != 0 and failed == 0:
        failed = 1
    return passed, failed


def rust_suite() -> tuple:
    env_note = os.environ.get("FLAGSTONE_BIN", "target/release/flagstone")
    print(f"(rust suite uses FLAGSTONE_BIN={env_note})", flush=True)
    code, out = run(
        ["cargo", "test", "--quiet", "--test", "sdk", "--", "--test-threads=4"],
        HERE / "rust",
        timeout=400,
    )
    passed = failed = 0
    for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed", out):
        passed += int(m.group(1))
        failed += int(m.group(2))
    if code != 0 and failed == 0:
        failed = 1
    return passed, failed


SUITES = {"python": python_suite, "node": node_suite, "rust": rust_suite}


def prebuild_rust() -> subprocess.Popen:
    """Compiles the Rust suite while the others run (the first build takes a minute or two)."""
    log = open(HERE / "rust" / "target-prebuild.log", "w")
    return subprocess.Popen(
        ["cargo", "test", "--quiet", "--test", "sdk", "--no-run"],
        cwd=HERE / "rust",
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def main(argv: list) -> int:
    names = argv[1:] or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown suites: {unknown}; choose from {list(SUITES)}", file=sys.stderr)
        return 2
    if "rust" in names and names[0] != "rust":
        prebuild = prebuild_rust()
        names = [n for n in names if n != "rust"] + ["rust"]
    else:
        prebuild = None
    total_p = total_f = 0
    summary = []
    for name in names:
        if name == "rust" and prebuild is not None:
            prebuild.wait()
        p, f = SUITES[name]()
        summary.append(f"  {name:7} {p} passed, {f} failed")
        total_p += p
        total_f += f
    print("\nSDK compatibility:")
    print("\n".join(summary))
    print(f"{total_p} passed, {total_f} failed")
    return 1 if total_f or total_p == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
