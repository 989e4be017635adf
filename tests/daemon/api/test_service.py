"""`AdminService` as the daemon starts it: with the broker away it still serves, says why it is not
ready, and stops within a bound."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from daemon.api import BROKER_UNREACHABLE, NO_CHAMPION, AdminService
from daemon.config import load_settings
from daemon.registry import SqliteRegistry
from dataflows.serve import ServingBoard


def test_without_a_broker_it_serves_and_says_why_it_is_not_ready(tmp_path: Path) -> None:
    away = {"bootstrap_servers": "127.0.0.1:9"}  # nothing listens on port 9
    settings = load_settings(None, schema={"features": ["x"], "classes": [0, 1]}, kafka=away,
                             admin={"host": "127.0.0.1", "port": 0, "token": "t"})  # fmt: skip
    with SqliteRegistry(tmp_path) as registry:
        service = AdminService(settings, registry, ServingBoard())
        service.start()
        try:
            url = f"http://127.0.0.1:{service.port}"
            ready = httpx.get(f"{url}/readyz", timeout=10)
            assert (ready.status_code, ready.json()["reasons"]) == (503, [BROKER_UNREACHABLE, NO_CHAMPION])
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        finally:
            started = time.monotonic()
            service.stop()
        assert time.monotonic() - started < 10
        assert not service.follower.is_alive()
        assert service.follower.error is None
