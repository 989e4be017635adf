"""The admin API served by uvicorn in a thread: it listens once start() returns (any free port
with 0), keeps the daemon's signal handlers, refuses a port in use where it is started, and stops."""

from __future__ import annotations

import signal
import socket

import httpx
import pytest

from daemon.api import AdminServer
from tests.daemon.api.conftest import GROUP, TOKEN, Api


def test_it_listens_when_start_returns_and_stops(api: Api) -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    server = AdminServer(api.app, "127.0.0.1", 0)
    server.start()
    try:
        assert server.port > 0
        url = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        answer = httpx.post(f"{url}/groups/{GROUP}/commands/freeze", json={"reason": "r"}, timeout=5,
                            headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        assert answer.status_code == 202
        assert len(api.sink.sent) == 1
        assert {sig: signal.getsignal(sig) for sig in before} == before
    finally:
        server.stop()
    assert server.error is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=2)


def test_a_port_in_use_fails_in_start_with_the_port(api: Api) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}.*admin.port"):
            AdminServer(api.app, "127.0.0.1", port).start()
