"""Kafka edges without a broker: librdkafka's in-process mock cluster, and an unreachable port.

The whole flow in memory, without Kafka at all, is in ``test_flow_inmemory.py``.

``test.mock.num.brokers`` makes a client start a mock cluster inside itself; other clients can
reach it at the address its metadata reports, for as long as that client lives. That is enough
to run the whole flow, Kafka source and sink included, in this process.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from daemon.wiring import kafka_sink, kafka_source, local_deps
from dataflows import FlowConfig, FlowDeps, Topics, build_flow, install_champion
from dataflows.decode import FeatureSchema
from dataflows.kafka_io import (
    DeliveryError,
    ReliableKafkaSink,
    StoppableKafkaSource,
    _SinkPartition,
)
from dataflows.records import KafkaBatch, KafkaOut
from learners import LearnerSpec

QUIET: dict[str, Any] = {"log_level": 0}


@pytest.fixture
def mock_brokers() -> Iterator[str]:
    """The bootstrap address of a fresh mock cluster, alive for the test."""
    anchor = Producer({"bootstrap.servers": "", "test.mock.num.brokers": 1, **QUIET})
    brokers = anchor.list_topics(timeout=5).brokers
    assert len(brokers) == 1
    broker = next(iter(brokers.values()))
    yield f"{broker.host}:{broker.port}"
    anchor.flush(1)


def _consume(brokers: str, topics: list[str], expected: int, deadline_s: float = 10.0) -> list[Any]:
    # assign, not subscribe: joining a consumer group on the mock cluster takes seconds
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "t", "enable.auto.commit": False, **QUIET})
    end = time.monotonic() + deadline_s
    assigned: set[str] = set()
    got: list[Any] = []
    try:
        # a topic appears when the first message is produced to it: wait (bounded) for all of them
        while assigned != set(topics) and time.monotonic() < end:
            metadata = consumer.list_topics(timeout=5).topics
            new = [t for t in topics if t in metadata and t not in assigned]
            if new:
                assigned.update(new)
                consumer.assign(
                    [TopicPartition(t, p, OFFSET_BEGINNING) for t in sorted(assigned) for p in metadata[t].partitions]
                )
            else:
                time.sleep(0.05)
        while len(got) < expected and time.monotonic() < end:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg)
        # anything beyond what was expected would be a duplicate: give it a moment to show up
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                got.append(msg)
    finally:
        consumer.close()
    return got


def test_sink_writes_a_batch_through_a_full_local_queue(mock_brokers: str) -> None:
    # a queue of 3 messages forces the BufferError → poll → retry path
    producer = Producer({"bootstrap.servers": mock_brokers, "queue.buffering.max.messages": 3, "linger.ms": 0, **QUIET})
    sink = _SinkPartition(producer, flush_timeout_s=10.0)
    items = [KafkaOut("sink-test", f"k{i}".encode(), f"v{i}".encode()) for i in range(25)]
    batch = KafkaBatch("sink-test", [f"b{i}".encode() for i in range(20)], [f"w{i}".encode() for i in range(20)])
    sink.write_batch([*items[:10], batch, *items[10:]])  # a served batch's predictions are one item
    assert len(producer) == 0  # every message acknowledged when write_batch returns
    sink.close()
    got = _consume(mock_brokers, ["sink-test"], expected=45)
    expected = [(i.key, i.value) for i in items] + [(m.key, m.value) for m in batch.messages()]
    assert sorted((m.key(), m.value()) for m in got) == sorted(expected)


def test_reliable_sink_config_and_build(mock_brokers: str) -> None:
    sink = ReliableKafkaSink(mock_brokers, {"linger.ms": 0, **QUIET}, flush_timeout_s=5.0)
    assert sink._config["enable.idempotence"] is True
    assert sink._config["acks"] == "all"
    assert sink._config["linger.ms"] == 0  # the caller's settings win
    part = sink.build("out", 0, 1)
    part.write_batch([KafkaOut("built", b"k", b"v")])
    part.close()
    (msg,) = _consume(mock_brokers, ["built"], expected=1)
    assert (msg.key(), msg.value()) == (b"k", b"v")


def test_delivery_error_when_the_broker_never_acknowledges() -> None:
    # nothing listens on port 1: every message times out after 500 ms
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 500, **QUIET})
    sink = _SinkPartition(producer, flush_timeout_s=3.0)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="refused 2 message"):
        sink.write_batch([KafkaOut("t", b"k1", b"v1"), KafkaOut("t", b"k2", b"v2")])
    assert time.monotonic() - started < 15.0
    # the errors were reported once, not carried into the next flush
    sink.close()


def test_delivery_error_when_flush_times_out() -> None:
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 60_000, **QUIET})
    sink = _SinkPartition(producer, flush_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="1 message\\(s\\) still unacknowledged"):
        sink.write_batch([KafkaOut("t", b"k", b"v")])
    assert time.monotonic() - started < 15.0
    with pytest.raises(DeliveryError, match="still unacknowledged"):
        sink.close()
    producer.purge()
    assert producer.flush(1) == 0


def _produce(brokers: str, messages: list[tuple[str, bytes | None, bytes | None]]) -> None:
    producer = Producer({"bootstrap.servers": brokers, **QUIET})
    for topic, key, value in messages:
        producer.produce(topic, value, key)
    assert producer.flush(10) == 0


def test_whole_flow_on_mock_cluster(mock_brokers: str, tmp_path: Path) -> None:
    topics = Topics("ev", "pred", "dead", "model", "lab")
    events: list[tuple[str, bytes | None, bytes | None]] = []
    for i in range(20):
        y = i % 2
        x = [2.0, 2.0] if y else [-2.0, -2.0]
        events.append(("ev", f"i{i}".encode(), json.dumps({"id": f"i{i}", "features": x, "label": y}).encode()))
    for i in range(6):
        events.append(("ev", None, json.dumps({"id": f"u{i}", "features": {"b": 1.0, "a": 0.5}}).encode()))
    events.append(("ev", b"bad", b"{not json"))
    events.append(("ev", b"empty", None))
    labels: list[tuple[str, bytes | None, bytes | None]] = [
        ("lab", None, json.dumps({"id": f"u{i}", "label": i % 2}).encode()) for i in range(3)
    ]
    labels.append(("lab", b"ghost", b'{"id": "ghost", "label": 1}'))
    _produce(mock_brokers, events + labels)

    config = FlowConfig(
        brokers=mock_brokers,
        topics=topics,
        schema=FeatureSchema(["a", "b"], [0, 1]),
        learner=LearnerSpec("river-logreg"),
        tail=False,
        drain_on_eof=True,
        consumer_config=QUIET,
        producer_config={"linger.ms": 0, **QUIET},
    )
    started = time.monotonic()
    run_main(_flow(config, local_deps(kafka_source(config), kafka_sink(config), tmp_path)))
    assert time.monotonic() - started < 30

    out = _consume(mock_brokers, ["pred", "dead", "model"], expected=26 + 3 + 1)
    by_topic: dict[str, list[Any]] = {"pred": [], "dead": [], "model": []}
    for msg in out:
        by_topic[msg.topic()].append(msg)

    predicted = sorted(m.key().decode() for m in by_topic["pred"])
    assert predicted == sorted([f"i{i}" for i in range(20)] + [f"u{i}" for i in range(6)])

    dead = [json.loads(m.value()) for m in by_topic["dead"]]
    reasons = sorted(d["reason"] for d in dead)
    assert reasons == ["bad_json", "empty_payload", "label_unmatched"]
    ghost = next(d for d in dead if d["reason"] == "label_unmatched")
    assert base64.b64decode(ghost["original_b64"]) == b'{"id": "ghost", "label": 1}'
    assert ghost["source"]["topic"] == "lab"

    model_events = [json.loads(m.value()) for m in by_topic["model"]]
    fork = [e for e in model_events if e["type"] == "report" and e["model"] == "fork"]
    assert sum(e["n_learned"] for e in fork) == 23  # 20 inline + 3 delayed labels
    champion = [e for e in model_events if e["type"] == "report" and e["model"] == "champion"]
    assert sum(e["n_labelled"] for e in champion) == 23  # scored on all of them, learned none
    assert sum(e["n_learned"] for e in champion) == 0


def _read_all(part: Any, deadline_s: float = 10.0) -> list[Any]:
    got: list[Any] = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            got.extend(part.next_batch())
        except StopIteration:
            return got
    raise AssertionError(f"the partition did not end within {deadline_s}s; read {len(got)}")


def test_partition_hands_on_kafka_messages_resumes_after_them_and_ends(mock_brokers: str) -> None:
    """The source's partition gives confluent-kafka's own messages (no copy per message), in
    order; its snapshot is the offset after the last one handed on; it ends at the end of the
    partition (tail=False), and at once when stopped."""
    producer = Producer({"bootstrap.servers": mock_brokers, **QUIET})
    for i in range(5):
        producer.produce("ev", f"v{i}".encode(), f"k{i}".encode(), partition=0)
    assert producer.flush(10) == 0
    stop = threading.Event()
    source = StoppableKafkaSource([mock_brokers], ["ev"], stop=stop, tail=False, add_config=QUIET)
    part = source.build_part("in", "0-ev", None)
    try:
        got = _read_all(part)
        assert all(type(m) is Message for m in got)
        assert [(m.key(), m.value(), m.offset()) for m in got] == [
            (f"k{i}".encode(), f"v{i}".encode(), i) for i in range(5)
        ]
        assert part.snapshot() == 5
    finally:
        part.close()
    resumed = source.build_part("in", "0-ev", 3)  # from a recovery snapshot: the offset it names
    try:
        assert [m.offset() for m in _read_all(resumed)] == [3, 4]
    finally:
        resumed.close()
    tailing = StoppableKafkaSource([mock_brokers], ["ev"], stop=stop, tail=True, add_config=QUIET).build_part(
        "in", "0-ev", 5
    )
    try:
        stop.set()
        with pytest.raises(StopIteration):
            tailing.next_batch()
    finally:
        tailing.close()
    with pytest.raises(ValueError, match="not of the topics"):
        source.build_part("in", "0-other", None)


def test_partitions_are_named_so_that_workers_share_each_topic(mock_brokers: str) -> None:
    """Bytewax hands the partitions out in their names' sorted order, one worker after another: a
    topic's partitions must sort in a row. Bytewax's own names ("3-ev") interleave topics."""
    producer = Producer({"bootstrap.servers": mock_brokers, **QUIET})
    producer.produce("ev", b"v", partition=0)
    producer.produce("lab", b"v", partition=0)
    assert producer.flush(10) == 0
    stop = threading.Event()
    balanced = StoppableKafkaSource([mock_brokers], ["ev", "lab"], stop=stop, add_config=QUIET)
    parts = balanced.list_parts()
    n = len(parts) // 2
    assert sorted(parts) == [f"ev#{i:05d}" for i in range(n)] + [f"lab#{i:05d}" for i in range(n)]
    legacy = StoppableKafkaSource([mock_brokers], ["ev", "lab"], stop=stop, add_config=QUIET, part_names="legacy")
    assert sorted(legacy.list_parts()) == sorted(f"{i}-{t}" for t in ("ev", "lab") for i in range(n))
    for name in ("lab#00000", "0-lab"):  # either name reads the same partition
        part = balanced.build_part("in", name, None)
        try:
            assert part._topic == "lab" and part._part_idx == 0
        finally:
            part.close()


def test_tailing_flow_stops_gracefully_and_flushes(mock_brokers: str, tmp_path: Path) -> None:
    """With tail=True the flow only ends when ``stop`` is set; its last epoch still reaches Kafka."""
    _produce(
        mock_brokers,
        [
            ("ev", None, json.dumps({"id": f"s{i}", "features": [float(i), 1.0], "label": i % 2}).encode())
            for i in range(8)
        ],
    )
    stop = threading.Event()
    config = FlowConfig(
        brokers=mock_brokers,
        topics=Topics("ev", "pred", "dead", "model", None),
        schema=FeatureSchema(["a", "b"], [0, 1]),
        learner=LearnerSpec("river-logreg"),
        tail=True,
        consumer_config=QUIET,
        producer_config={"linger.ms": 0, **QUIET},
        stop=stop,
    )
    seen: list[Any] = []

    def watch() -> None:
        # stop the flow once every prediction is out (or after a bounded wait)
        seen.extend(_consume(mock_brokers, ["pred"], expected=8, deadline_s=15.0))
        stop.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    run_main(_flow(config, local_deps(kafka_source(config), kafka_sink(config), tmp_path)))
    watcher.join(timeout=20)
    assert time.monotonic() - started < 25
    assert sorted(m.key() for m in seen) == sorted(f"s{i}".encode() for i in range(8))
    model_events = [json.loads(m.value()) for m in _consume(mock_brokers, ["model"], expected=1)]
    assert sum(e["n_learned"] for e in model_events if e["type"] == "report" and e["model"] == "fork") == 8


def test_source_resets_lost_offsets_to_the_oldest_event_unless_told_otherwise(
    mock_brokers: str, capfd: pytest.CaptureFixture[str]
) -> None:
    _produce(mock_brokers, [("ev", b"k", b"{}")])
    stop = threading.Event()
    source = StoppableKafkaSource([mock_brokers], ["ev"], stop=stop)
    assert source._add_config["auto.offset.reset"] == "earliest"
    told = StoppableKafkaSource([mock_brokers], ["ev"], stop=stop, add_config={"auto.offset.reset": "error"})
    assert told._add_config["auto.offset.reset"] == "error"
    # Listing partitions goes through an admin client, which must not be handed the consumer setting.
    assert sorted(source.list_parts()) == [f"ev#{i:05d}" for i in range(4)]  # the mock cluster makes 4
    assert "auto.offset.reset is a consumer property" not in capfd.readouterr().err


def _flow(config: FlowConfig, deps: FlowDeps) -> Dataflow:
    """The flow as the daemon builds it: the champion installed first."""
    return build_flow(config, deps, installed=install_champion(config, deps))
