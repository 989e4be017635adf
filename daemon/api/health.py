"""Readiness: why this process should not get traffic yet, as named reasons.

`/readyz` answers 503 with the reasons while there are any. Two sources feed them: the daemon sets
and clears reasons as its state changes (``recovering`` while it resumes from the recovery store),
and checks are asked at each probe (`BrokerProbe`: can the broker be reached; `serving_check`: has
this process a champion to serve). A check is asked on every probe, so keep it cheap or cached.

>>> ready = Readiness(lambda: None)
>>> ready.set(RECOVERING)
>>> ready.reasons()
['recovering']
>>> ready.clear(RECOVERING)
>>> ready.reasons()
[]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaException

from dataflows.ports import Registry
from dataflows.serve import ServingBoard

__all__ = ["BROKER_UNREACHABLE", "NO_CHAMPION", "RECOVERING", "BrokerProbe", "Check", "Readiness", "serving_check"]

RECOVERING = "recovering"
NO_CHAMPION = "no champion yet"
BROKER_UNREACHABLE = "broker unreachable"

Check = Callable[[], str | None]  # a reason, or None when all is well


class Readiness:
    """Reasons set by the daemon, plus those of the ``checks``; thread-safe."""

    def __init__(self, *checks: Check) -> None:
        self._checks = checks
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def set(self, reason: str) -> None:
        with self._lock:
            self._held.add(reason)

    def clear(self, reason: str) -> None:
        with self._lock:
            self._held.discard(reason)

    def reasons(self) -> list[str]:
        """Every reason that holds now, sorted (empty: ready)."""
        with self._lock:
            held = set(self._held)
        held.update(r for r in (check() for check in self._checks) if r is not None)
        return sorted(held)


class _Metadata(Protocol):  # confluent_kafka's Producer, Consumer and AdminClient all answer this
    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...


class BrokerProbe:
    """``broker unreachable`` when the cluster's metadata cannot be had within ``timeout_s``.

    The answer is kept for ``every_s``: a probe every second from a kubelet asks the broker at
    most once per ``every_s``, and a probe never waits longer than ``timeout_s``. Callers that come
    while another asks wait for its answer.
    """

    def __init__(
        self, client: _Metadata, *, every_s: float = 5.0, timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.client, self.every_s, self.timeout_s, self.clock = client, every_s, timeout_s, clock
        self._lock = threading.Lock()
        self._asked_at: float | None = None
        self._reason: str | None = None

    def __call__(self) -> str | None:
        with self._lock:
            now = self.clock()
            if self._asked_at is None or now - self._asked_at >= self.every_s:
                self._reason = self._ask()
                self._asked_at = self.clock()
            return self._reason

    def _ask(self) -> str | None:
        try:
            self.client.list_topics(timeout=self.timeout_s)
        except KafkaException:
            return BROKER_UNREACHABLE
        return None


def serving_check(board: ServingBoard | None, registry: Registry, group: str) -> Check:
    """``no champion yet`` until this process's board serves ``group`` (without a board: until the
    registry names a champion). In a cluster, a process serves once it has read the first table."""

    def check() -> str | None:
        if board is None:
            return NO_CHAMPION if registry.champion(group) is None else None
        try:
            board.current(group)
        except LookupError:
            return NO_CHAMPION
        return None

    return check
