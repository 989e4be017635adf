"""Readiness's reasons, the broker probe's cache and bound, and the serving check."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from daemon.api import (
    BROKER_UNREACHABLE,
    NO_CHAMPION,
    RECOVERING,
    BrokerProbe,
    KafkaCommandSink,
    Readiness,
    serving_check,
)
from daemon.registry import SqliteRegistry
from dataflows.kafka_io import DeliveryError
from dataflows.records import KafkaOut
from dataflows.serve import Served, ServingBoard, ServingTable
from tests.daemon.api.conftest import GROUP, learner


class Metadata:
    def __init__(self) -> None:
        self.up = True
        self.asked = 0
        self.timeouts: list[float] = []

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        self.asked += 1
        self.timeouts.append(timeout)
        if not self.up:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        return object()


def test_the_broker_is_asked_at_most_once_per_interval_with_a_bounded_wait() -> None:
    now = [0.0]
    broker = Metadata()
    probe = BrokerProbe(broker, every_s=5.0, timeout_s=2.0, clock=lambda: now[0])
    assert probe() is None
    broker.up = False
    now[0] = 4.9
    assert probe() is None and broker.asked == 1  # the answer of 4.9 s ago
    now[0] = 5.0
    assert probe() == BROKER_UNREACHABLE and broker.asked == 2
    assert broker.timeouts == [2.0, 2.0]


def test_reasons_are_set_cleared_and_merged_with_the_checks() -> None:
    broker = Metadata()
    broker.up = False
    ready = Readiness(BrokerProbe(broker))
    ready.set(RECOVERING)
    assert ready.reasons() == [BROKER_UNREACHABLE, RECOVERING]
    ready.clear(RECOVERING)
    ready.clear(RECOVERING)  # clearing twice is fine
    assert ready.reasons() == [BROKER_UNREACHABLE]


def test_readiness_is_safe_across_threads() -> None:
    ready = Readiness()

    def toggle(name: str) -> None:
        for _ in range(500):
            ready.set(name)
            ready.reasons()
            ready.clear(name)

    threads = [threading.Thread(target=toggle, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert ready.reasons() == []


def test_no_champion_until_the_board_serves_the_group(tmp_path: Any) -> None:
    board = ServingBoard()
    with SqliteRegistry(tmp_path) as registry:
        check = serving_check(board, registry, GROUP)
        assert check() == NO_CHAMPION
        board.publish(ServingTable(GROUP, Served("default/1", learner())))
        assert check() is None
        without_board = serving_check(None, registry, GROUP)
        assert without_board() == NO_CHAMPION
        registry.create_version(GROUP, name="champion", parent=None, learner=learner(), config={}, ts_ms=0,
                                status="champion")  # fmt: skip
        assert without_board() is None


def test_a_broker_that_cannot_be_reached_is_said_within_the_bound_and_a_command_fails() -> None:
    sink = KafkaCommandSink("127.0.0.1:9", timeout_s=1.0)  # nothing listens on port 9
    probe = BrokerProbe(sink, timeout_s=0.5)
    started = time.monotonic()
    assert probe() == BROKER_UNREACHABLE
    assert time.monotonic() - started < 5
    with pytest.raises(DeliveryError, match=r"test\.control"):
        sink.send(KafkaOut("test.control", b"default", b"{}"))
    assert time.monotonic() - started < 10
