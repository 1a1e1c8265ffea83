"""One seeded `flagstone serve` shared by every Python suite of the process (started on first
use, stopped at exit)."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flagstone_server as fs  # noqa: E402
from flagstone_server import (  # noqa: E402,F401
    BANNER,
    CHECKOUT,
    COLOR,
    FEATURES,
    LIVE,
    MAX_ITEMS,
    PREMIUM,
    SERVER_ONLY,
    STABLE_FEATURES,
    VIP_BANNER,
    Fixture,
    FlagstoneServer,
    poll,
)

# The SDKs log expected failures (unknown keys, streams cut at shutdown) with tracebacks.
if not os.environ.get("FLAGSTONE_SDK_VERBOSE"):
    logging.getLogger("flagsmith").setLevel(logging.CRITICAL)

_shared: Optional[Tuple[FlagstoneServer, Fixture]] = None


def shared() -> Tuple[FlagstoneServer, Fixture]:
    global _shared
    if _shared is None:
        server = FlagstoneServer().start()
        atexit.register(server.stop)
        try:
            fixture = fs.seed(server)
        except Exception:
            server.stop()
            raise
        _shared = (server, fixture)
    return _shared


def set_state(feature: str, value, enabled: bool = True) -> None:
    server, fixture = shared()
    fs.set_state(server, fixture, feature, value, enabled)


def unique(prefix: str) -> str:
    """A fresh identifier, so traits persisted by one test never leak into another."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


MV_IDENTIFIERS = [f"mv-user-{i}" for i in range(80)]
