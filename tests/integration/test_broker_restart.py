"""The daemon rides out a broker restart: no crash, no lost event."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Message

from daemon.config import load_settings
from daemon.kafka_client import make_producer, produce_all, read_all, read_until
from daemon.kafka_local import KafkaLocal, KafkaLocalError
from daemon.topics import ensure_topics
from daemon.workload import CLASSES, FEATURES, Workload, WorkloadSpec
from tests.integration.conftest import BackgroundDaemon

pytestmark = pytest.mark.kafka


@pytest.fixture
def own_broker(kafka_bootstrap: str) -> Iterator[KafkaLocal]:
    """A second broker of this test's own (other ports, own data), so it can be stopped safely.

    It shares the jar cache with the main broker (``kafka_bootstrap`` made sure the jars are there).
    Its ports are free ones, so two test runs on one machine never stop each other's broker.
    """
    for attempt in range(3):  # a port found free may be taken before the broker binds it: try others
        port = _free_port_pair()
        kafka = KafkaLocal(cache=KafkaLocal.from_env().cache, port=port, controller_port=port + 1)
        kafka.reset()
        try:
            kafka.up()
            break
        except KafkaLocalError:
            kafka.reset()
            if attempt == 2:
                raise
    yield kafka
    kafka.reset()


def _free_port_pair() -> int:
    """A port p with p and p + 1 free right now (broker and controller listeners): both can be
    bound (a port with no listener may still be a client connection's, which a bind refuses)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    msg = "no two adjacent free ports found"
    raise RuntimeError(msg)


def test_daemon_survives_a_broker_restart_without_losing_events(own_broker: KafkaLocal, tmp_path: Path) -> None:
    bootstrap = own_broker.bootstrap
    settings = load_settings(
        None,
        kafka={"bootstrap_servers": bootstrap, "labels_topic": None},
        schema={"features": list(FEATURES), "classes": list(CLASSES)},
        runtime={"tail": True, "workers": 1},
        registry={"path": str(tmp_path / "registry")},
        model={"candidates": [{"name": "fork"}]},
    )
    k = settings.kafka
    ensure_topics(bootstrap, settings.topics().all(), partitions=2)
    spec = WorkloadSpec(n_events=2000, malformed_every=0, unmatched_labels=0, delayed_share=0.0)
    events = [i for i in Workload(spec).items() if i.kind == "events"]
    daemon = BackgroundDaemon(settings).start()
    try:
        produce_all(make_producer(bootstrap), ((k.events_topic, i.key, i.value) for i in events[:1000]))
        read_until(bootstrap, [k.predictions_topic], lambda m: len(m) >= 1000, timeout_s=60)

        own_broker.down()
        own_broker.up()

        produce_all(make_producer(bootstrap), ((k.events_topic, i.key, i.value) for i in events[1000:]))
        got = read_until(bootstrap, [k.predictions_topic], lambda m: len(m) >= 2000, timeout_s=90)
        assert len(got) >= 2000, f"{len(got)} predictions within 90 s: {_unpredicted(bootstrap, k.events_topic, got)}"
        assert daemon.errors == []
        assert daemon.alive
    finally:
        stopped = daemon.stop(timeout_s=60)
    assert stopped
    assert daemon.errors == []
    predictions = read_all(bootstrap, [k.predictions_topic])
    ids = {orjson.loads(m.value() or b"")["id"] for m in predictions}
    assert ids == {i.key.decode() for i in events if i.key}, _unpredicted(bootstrap, k.events_topic, predictions)


def _unpredicted(bootstrap: str, events_topic: str, predictions: list[Message]) -> str:
    """Which events have no prediction, per partition of the events topic (to tell a stuck
    partition from a lost output when this test fails)."""
    predicted = {orjson.loads(m.value() or b"")["id"] for m in predictions}
    missing: dict[int, list[int]] = {}
    for m in read_all(bootstrap, [events_topic]):
        if (m.key() or b"").decode() not in predicted:
            missing.setdefault(m.partition() or 0, []).append(m.offset() or 0)
    return "unpredicted events by partition: " + (
        ", ".join(f"{p}: {len(o)} (offsets {min(o)}-{max(o)})" for p, o in sorted(missing.items())) or "none"
    )
