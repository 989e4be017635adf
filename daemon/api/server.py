"""The admin API served by uvicorn in a thread of the daemon.

The socket is bound by `AdminServer.start` itself, in the caller's thread: a port in use fails
there with a clear message (uvicorn would log it and exit the process), and with port 0 the port
the system chose is known at once. uvicorn installs signal handlers only when it runs on the main
thread, and it runs on a thread of its own here: SIGTERM and SIGINT stay the daemon's (its graceful
stop), and the daemon stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

__all__ = ["AdminServer"]

log = logging.getLogger("headwater")


class AdminServer:
    """``start()`` returns once the API listens on ``host``:``port`` (``port`` 0: see `port`);
    ``stop()`` finishes the requests in flight and returns once the thread has ended."""

    def __init__(self, app: FastAPI, host: str, port: int, *, log_level: str = "warning") -> None:
        self.host, self.requested_port = host, port
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, log_config=None, access_log=False,
                                lifespan="off", timeout_graceful_shutdown=5)  # fmt: skip
        self._server = uvicorn.Server(config)
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            msg = "the admin API is not started: call start() first"
            raise RuntimeError(msg)
        return self._port

    def start(self, timeout_s: float = 10.0) -> None:
        self._socket = _bind(self.host, self.requested_port)
        self._port = int(self._socket.getsockname()[1])
        self._thread = threading.Thread(target=self._run, name="headwater-admin-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                msg = f"the admin API did not start on {self.host}:{self.port} within {timeout_s:g} s: {self.error}"
                raise RuntimeError(msg) from self.error
            time.sleep(0.01)
        log.info("admin API listening on %s:%d", self.host, self.port)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("the admin API did not stop within %g s", timeout_s)
        if self._socket is not None:
            self._socket.close()

    def _run(self) -> None:
        assert self._socket is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # reported by start(), or logged if it comes later
            self.error = exc
            log.exception("the admin API stopped")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        msg = f"the admin API cannot listen on {host}:{port} ({exc.strerror}); set admin.port (0: any free port)"
        raise OSError(exc.errno, msg) from None
    return sock
