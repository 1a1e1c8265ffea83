"""Starts a real `flagstone serve` for the SDK compatibility suites and seeds it.

It builds nothing: it runs the binary named by FLAGSTONE_BIN (default target/release/flagstone
under the repository root) on a free loopback port, with a temporary SQLite database, a
temporary edge cache directory and a known admin key, waits for /health/liveness, seeds the
data every suite uses through the admin API, and stops the server at the end.

Used two ways:
  * from Python: `with FlagstoneServer() as server: fixture = seed(server)`;
  * from other languages: `python3 flagstone_server.py serve` prints one JSON line (the
    fixture, see `Fixture.to_json`) once the server is up and seeded, then keeps the server
    running until its standard input is closed (or it gets SIGTERM/SIGINT), and stops it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import requests

REPO = Path(__file__).resolve().parents[2]
ADMIN_KEY = "sdk-compat-admin-key-0123456789"

# The seeded data, shared by every suite (the names are what the SDKs are asked for).
BANNER = "banner"  # enabled, "hello"; identity override for VIP_IDENTIFIER
CHECKOUT = "checkout_v2"  # disabled, no value
MAX_ITEMS = "max_items"  # enabled, 10 (an integer)
COLOR = "color"  # multivariate: "grey" by default, options red/blue at 50/50
PREMIUM = "premium_feature"  # disabled, "standard"; segment override plan == premium
LIVE = "live_toggle"  # changed by the propagation tests; never compared across clients
FEATURES = [BANNER, CHECKOUT, MAX_ITEMS, COLOR, PREMIUM, LIVE]
SERVER_ONLY = "server_only"  # is_server_key_only: hidden from client keys, not in FEATURES
STABLE_FEATURES = [f for f in FEATURES if f != LIVE]
VIP_IDENTIFIER = "vip-user"
VIP_BANNER = "vip banner"
SEGMENT_NAME = "premium users"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary() -> Path:
    path = Path(os.environ.get("FLAGSTONE_BIN", REPO / "target" / "release" / "flagstone"))
    if not path.is_absolute():
        path = REPO / path
    if not path.exists():
        raise RuntimeError(f"{path} not found: build it with `cargo build --release -p flagstone`")
    return path


class AdminError(RuntimeError):
    pass


class FlagstoneServer:
    """A `flagstone serve` child process on 127.0.0.1:<free port>."""

    def __init__(self, startup_timeout: float = 30.0) -> None:
        self.startup_timeout = startup_timeout
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api/v1/"
        self.admin_key = ADMIN_KEY
        self.tmp = Path(tempfile.mkdtemp(prefix="flagstone-sdk-"))
        self.log_path = self.tmp / "server.log"
        self.proc: Optional[subprocess.Popen] = None
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Api-Key {ADMIN_KEY}"

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "FlagstoneServer":
        binary = _binary()
        args = [
            str(binary),
            "serve",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--database-url",
            f"sqlite://{self.tmp}/f.db",
        ]
        help_text = subprocess.run(
            [str(binary), "serve", "--help"], capture_output=True, text=True, timeout=30
        ).stdout
        if "--edge-cache-dir" in help_text:
            args += ["--edge-cache-dir", str(self.tmp / "edge-cache")]
        env = dict(os.environ)
        env["FLAGSTONE_ADMIN_KEY"] = ADMIN_KEY
        env.setdefault("RUST_LOG", "info")
        for k in ("FLAGSTONE_BIND", "FLAGSTONE_DATABASE_URL", "FLAGSTONE_EDGE_CACHE_DIR"):
            env.pop(k, None)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=self.tmp
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                message = f"flagstone serve exited with {self.proc.returncode}:\n{self.log_tail()}"
                self.stop()
                raise RuntimeError(message)
            try:
                if requests.get(f"{self.url}/health/liveness", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                message = f"flagstone serve did not become live:\n{self.log_tail()}"
                self.stop()
                raise RuntimeError(message)
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        if os.environ.get("FLAGSTONE_SDK_KEEP_TMP"):
            print(f"kept {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "FlagstoneServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- admin API ------------------------------------------------------------------------
    def admin(self, method: str, path: str, body: Any = None, expect: Optional[int] = None) -> Any:
        """Calls the admin API (`path` relative to /api/v1/); raises unless the status is 2xx."""
        r = self.http.request(method, self.api_url + path.lstrip("/"), json=body, timeout=10)
        if (expect is not None and r.status_code != expect) or not (200 <= r.status_code < 300):
            raise AdminError(f"{method} {path} {body!r} -> {r.status_code} {r.text}")
        return r.json() if r.content else None


@dataclass
class Fixture:
    url: str
    api_url: str
    admin_key: str
    organisation_id: int
    project_id: int
    environment_id: int
    client_key: str
    server_key: str
    segment_id: int
    vip_identifier: str
    vip_identity_id: int
    # name -> {"id": feature id, "state_id": environment feature state id}
    features: Dict[str, Dict[str, int]] = field(default_factory=dict)
    # multivariate option keys of COLOR
    color_variants: Dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def seed(server: FlagstoneServer) -> Fixture:
    """Creates the organisation, project, environment, server key, features, segment and
    overrides every suite expects."""
    a = server.admin
    org = a("POST", "organisations/", {"name": "SDK compat"})
    project = a("POST", "projects/", {"name": "sdk", "organisation": org["id"]})
    env = a(
        "POST",
        "environments/",
        {
            "name": "production",
            "project": project["id"],
            "allow_client_traits": True,
            "use_identity_overrides_in_local_eval": True,
        },
    )
    client_key = env["api_key"]
    server_key = a("POST", f"environments/{client_key}/api-keys/", {"name": "sdk-tests"})["key"]
    assert server_key.startswith("ser."), server_key

    pid = project["id"]
    bodies = {
        BANNER: {"name": BANNER, "initial_value": "hello", "default_enabled": True},
        CHECKOUT: {"name": CHECKOUT, "default_enabled": False},
        MAX_ITEMS: {"name": MAX_ITEMS, "initial_value": 10, "default_enabled": True},
        COLOR: {
            "name": COLOR,
            "initial_value": "grey",
            "default_enabled": True,
            "multivariate_options": [
                {"value": "red", "key": "red-variant", "default_percentage_allocation": 50},
                {"value": "blue", "key": "blue-variant", "default_percentage_allocation": 50},
            ],
        },
        PREMIUM: {"name": PREMIUM, "initial_value": "standard", "default_enabled": False},
        LIVE: {"name": LIVE, "initial_value": "v0", "default_enabled": True},
        SERVER_ONLY: {
            "name": SERVER_ONLY,
            "initial_value": "secret",
            "default_enabled": True,
            "is_server_key_only": True,
        },
    }
    features: Dict[str, Dict[str, int]] = {}
    color_variants: Dict[str, str] = {}
    for name in FEATURES + [SERVER_ONLY]:
        f = a("POST", f"projects/{pid}/features/", bodies[name])
        states = a("GET", f"environments/{client_key}/featurestates/?feature={f['id']}")
        assert states["count"] == 1, states
        features[name] = {"id": f["id"], "state_id": states["results"][0]["id"]}
        if name == COLOR:
            color_variants = {o["value"]: o["key"] for o in f["multivariate_options"]}

    segment = a(
        "POST",
        f"projects/{pid}/segments/",
        {
            "name": SEGMENT_NAME,
            "rules": [
                {
                    "type": "ALL",
                    "rules": [
                        {
                            "type": "ANY",
                            "conditions": [
                                {"operator": "EQUAL", "property": "plan", "value": "premium"}
                            ],
                        }
                    ],
                }
            ],
        },
    )
    a(
        "POST",
        f"environments/{client_key}/features/{features[PREMIUM]['id']}/create-segment-override/",
        {"segment": segment["id"], "enabled": True, "feature_state_value": "premium"},
    )
    vip = a("POST", f"environments/{client_key}/identities/", {"identifier": VIP_IDENTIFIER})
    a(
        "POST",
        f"environments/{client_key}/identities/{vip['id']}/featurestates/",
        {"feature": features[BANNER]["id"], "enabled": True, "feature_state_value": VIP_BANNER},
    )
    fixture = Fixture(
        url=server.url,
        api_url=server.api_url,
        admin_key=server.admin_key,
        organisation_id=org["id"],
        project_id=pid,
        environment_id=env["id"],
        client_key=client_key,
        server_key=server_key,
        segment_id=segment["id"],
        vip_identifier=VIP_IDENTIFIER,
        vip_identity_id=vip["id"],
        features=features,
        color_variants=color_variants,
    )
    wait_until_published(server, fixture)
    return fixture


def set_state(
    server: FlagstoneServer, fixture: Fixture, feature: str, value: Any, enabled: bool = True
) -> None:
    """Changes a feature's environment default through the admin API."""
    server.admin(
        "PATCH",
        f"environments/{fixture.client_key}/featurestates/{fixture.features[feature]['state_id']}/",
        {"feature_state_value": value, "enabled": enabled},
    )


def poll(check: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Calls `check` until it returns something truthy or `timeout` seconds pass; returns the
    last result (falsy on timeout). Exceptions count as falsy until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except Exception:  # noqa: BLE001 - retried until the deadline
            result = None
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


def wait_until_published(server: FlagstoneServer, fixture: Fixture, timeout: float = 10.0) -> None:
    """Waits until the SDK API serves the seeded environment: every feature in /flags/, the
    segment override and identity override in the environment document."""

    def ready() -> bool:
        flags = requests.get(
            fixture.api_url + "flags/", headers={"X-Environment-Key": fixture.client_key}, timeout=2
        )
        if flags.status_code != 200:
            return False
        if {f["feature"]["name"] for f in flags.json()} != set(FEATURES):
            return False
        doc = requests.get(
            fixture.api_url + "environment-document/",
            headers={"X-Environment-Key": fixture.server_key},
            timeout=2,
        )
        if doc.status_code != 200:
            return False
        body = doc.json()
        return bool(body.get("identity_overrides")) and any(
            s.get("feature_states") for s in body.get("project", {}).get("segments", [])
        )

    if not poll(ready, timeout, 0.05):
        raise RuntimeError(
            "the SDK API did not serve the seeded environment within "
            f"{timeout}s (is the edge running in `flagstone serve`?)\n{server.log_tail()}"
        )


def main(argv: list) -> int:
    if argv[1:2] != ["serve"]:
        print(__doc__, file=sys.stderr)
        return 2
    server = FlagstoneServer()
    stopping = {"flag": False}

    def on_signal(*_: Any) -> None:
        stopping["flag"] = True
        server.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
        fixture = seed(server)
        print(fixture.to_json(), flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"error": str(e)}), flush=True)
        return 1
    finally:
        if not stopping["flag"]:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
