"""What the serve side reports to the `Metrics` port: predictions and their latencies by the
route that really served them, dead letters by reason, each micro-batch, records read, lag,
flushes and refused messages, and every change of who serves."""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from confluent_kafka import Producer

from dataflows.config import Topics
from dataflows.decode import Decoder, RawMessage
from dataflows.kafka_io import DeliveryError, StoppableKafkaSource, _SinkPartition
from dataflows.ports import NullMetrics
from dataflows.records import KafkaBatch, KafkaOut
from dataflows.serve import Served, Server, ServingBoard, ServingTable
from tests.dataflows.helpers import CLASSES, GROUP, SCHEMA, Broken, FakeClock, table_with, trained_learner
from tests.dataflows.test_flow_mock_kafka import QUIET, _read_all, mock_brokers  # noqa: F401 (a fixture)

TOPICS = Topics("events", "pred", "dead", "model", "labels")


class Recorder(NullMetrics):
    """Keeps every call it is given, by method."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[Any, ...]]] = collections.defaultdict(list)
        self._lock = threading.Lock()

    def _add(self, method: str, *args: Any) -> None:
        with self._lock:
            self.calls[method].append(args)

    def served(self, group: str, route: str, n: int, latency_s: float) -> None:
        self._add("served", group, route, n, latency_s)

    def prediction_latencies(self, group: str, route: str, latencies_s: npt.NDArray[np.float64]) -> None:
        self._add("prediction_latencies", group, route, latencies_s.copy())

    def batch_served(self, group: str, records: int, serve_s: float) -> None:
        self._add("batch_served", group, records, serve_s)

    def dead_lettered(self, reason: str, n: int) -> None:
        self._add("dead_lettered", reason, n)

    def consumed(self, topic: str, n: int) -> None:
        self._add("consumed", topic, n)

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        self._add("consumer_lag", topic, partition, lag)

    def flushed(self, flush_s: float) -> None:
        self._add("flushed", flush_s)

    def delivery_failed(self, topic: str, n: int) -> None:
        self._add("delivery_failed", topic, n)


def _raw(i: int, value: bytes | None) -> RawMessage:
    return RawMessage(f"k{i}".encode(), value, "events", 0, i, (1, 900_000))


def _events(n: int) -> list[RawMessage]:
    """Event i happened i*10 ms before the clock's now (1,000,000 ms), by its own ts_ms."""
    return [
        _raw(i, json.dumps({"id": f"user-{i}", "features": [float(i % 7) - 3.0, 1.0], "ts_ms": 1_000_000 - 10 * i})
             .encode())
        for i in range(n)
    ]  # fmt: skip


def _serve(table: ServingTable, msgs: list[RawMessage]) -> tuple[Recorder, list[dict[str, Any]]]:
    board = ServingBoard()
    board.publish(table)
    metrics = Recorder()
    server = Server(GROUP, Decoder(SCHEMA, "events", "labels"), board, CLASSES, TOPICS, FakeClock(1_000.0), metrics)
    (step,) = server(list(msgs))
    batches = [item for item in step.out if isinstance(item, KafkaBatch) and item.topic == "pred"]
    return metrics, [json.loads(v) for b in batches for v in b.values]


def test_predictions_and_their_latencies_are_reported_by_the_route_that_served_them() -> None:
    """Per route: as many predictions as the predictions topic gets with that route, each one's
    latency exactly ``predicted_ts_ms - event_ts_ms``, and their mean; dead letters by reason;
    the micro-batch once, with every raw message it held."""
    msgs = [*_events(200), _raw(900, b"{not json"), _raw(901, None), _raw(902, b"[1]")]
    metrics, predictions = _serve(table_with(trained_learner(), trained_learner(seed=5), 0.3), msgs)

    by_route: dict[str, list[float]] = collections.defaultdict(list)
    for p in predictions:
        by_route[p["route"]].append((p["predicted_ts_ms"] - p["event_ts_ms"]) / 1000)
    assert set(by_route) == {"champion", "canary"}
    served = {route: (n, mean) for group, route, n, mean in metrics.calls["served"] if group == GROUP}
    assert {route: n for route, (n, _) in served.items()} == {r: len(v) for r, v in by_route.items()}
    latencies = {route: values for _, route, values in metrics.calls["prediction_latencies"]}
    for route, expected in by_route.items():
        np.testing.assert_allclose(np.sort(latencies[route]), np.sort(expected))
        assert served[route][1] == pytest.approx(np.mean(expected))
    assert max(by_route["champion"] + by_route["canary"]) == pytest.approx(1.99)  # event 199: 1,990 ms

    reasons = collections.Counter({reason: n for reason, n in metrics.calls["dead_lettered"]})
    assert reasons == {"bad_json": 1, "empty_payload": 1, "wrong_type": 1}
    ((group, records, serve_s),) = metrics.calls["batch_served"]
    assert (group, records) == (GROUP, 203)
    assert 0 < serve_s < 10


def test_events_a_failing_canary_leaves_to_the_champion_count_for_the_champion() -> None:
    metrics, predictions = _serve(
        table_with(trained_learner(), Broken(trained_learner(), predict=True), 0.5), _events(100)
    )
    assert {p["route"] for p in predictions} == {"champion"}
    assert [(route, n) for _, route, n, _ in metrics.calls["served"]] == [("champion", 100)]
    assert "dead_lettered" not in metrics.calls


def test_an_event_without_a_time_is_counted_but_has_no_latency() -> None:
    msg = RawMessage(b"k", b'{"id": "a", "features": [1.0, 2.0]}', "events", 0, 0, None)
    metrics, predictions = _serve(table_with(trained_learner()), [msg])
    assert predictions[0]["event_ts_ms"] is None
    ((_, route, n, mean),) = metrics.calls["served"]
    assert (route, n) == ("champion", 1) and np.isnan(mean)
    ((_, _, values),) = metrics.calls["prediction_latencies"]
    assert np.isnan(values).all()


def test_the_board_tells_its_listener_each_table_that_comes_to_serve() -> None:
    seen: list[ServingTable] = []
    board = ServingBoard(on_change=seen.append)
    first = board.publish(table_with(trained_learner()))
    fork = Served("default/3", trained_learner(seed=3))
    assert board.refresh(GROUP, "default/1", fork)
    assert not board.refresh(GROUP, "default/9", fork)  # not the champion: nothing changes
    assert board.drop_fresh(GROUP)
    assert not board.drop_fresh(GROUP)
    canary = board.update(GROUP, lambda t: dataclasses.replace(t, canary=fork, canary_share=0.2))
    assert not board.follow(dataclasses.replace(first, seq=1))  # an older table: not served
    theirs = board.follow(dataclasses.replace(first, seq=9))
    assert theirs
    assert [(t.seq, t.fresh is not None, t.canary is not None) for t in seen] == [
        (1, False, False), (1, True, False), (1, False, False), (2, False, True), (9, False, False),
    ]  # fmt: skip
    assert seen[0] is first and seen[3] is canary and seen[-1] is board.current(GROUP)


def test_the_sink_reports_each_flush_and_every_message_the_broker_refused() -> None:
    # nothing listens on port 1: every message times out after 500 ms
    metrics = Recorder()
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 500, **QUIET})
    sink = _SinkPartition(producer, 3.0, metrics)
    with pytest.raises(DeliveryError, match="refused 3 message"):
        sink.write_batch([KafkaOut("t", b"k1", b"v1"), KafkaBatch("u", [b"k2", b"k3"], [b"v2", b"v3"])])
    assert sorted(metrics.calls["delivery_failed"]) == [("t", 1), ("u", 2)]
    ((flush_s,),) = metrics.calls["flushed"]
    assert 0.4 < flush_s < 3.0  # the flush waited for the timeouts
    sink.close()
    assert len(metrics.calls["flushed"]) == 2  # the errors were counted once
    assert sorted(metrics.calls["delivery_failed"]) == [("t", 1), ("u", 2)]


def test_a_message_refused_before_it_leaves_is_counted() -> None:
    metrics = Recorder()
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "message.max.bytes": 1000, **QUIET})
    sink = _SinkPartition(producer, 1.0, metrics)
    with pytest.raises(DeliveryError, match="refused a message for big"):
        sink.write_batch([KafkaOut("big", b"k", b"x" * 5000)])
    assert metrics.calls["delivery_failed"] == [("big", 1)]
    producer.purge()


def test_the_source_counts_what_it_reads_and_reports_each_partitions_lag(mock_brokers: str) -> None:  # noqa: F811
    producer = Producer({"bootstrap.servers": mock_brokers, **QUIET})
    for i in range(30):
        producer.produce("ev", f"v{i}".encode(), partition=1)
    assert producer.flush(10) == 0
    metrics = Recorder()
    source = StoppableKafkaSource([mock_brokers], ["ev"], stop=threading.Event(), tail=False, add_config=QUIET,
                                  batch_size=7, metrics=metrics)  # fmt: skip
    part = source.build_part("in", "ev#00001", None)
    try:
        assert len(_read_all(part)) == 30
        assert sum(n for topic, n in metrics.calls["consumed"] if topic == "ev") == 30
        assert len(metrics.calls["consumed"]) >= 5  # one call per poll, not per record
        # librdkafka's statistics (each second): the partition's end less the next offset to read
        deadline = time.monotonic() + 5
        while not metrics.calls["consumer_lag"] and time.monotonic() < deadline:
            part._consumer.poll(0.1)
        assert metrics.calls["consumer_lag"], "no statistics within 5 s"
        assert metrics.calls["consumer_lag"][-1] == ("ev", 1, 0)
        part._process_stats(json.dumps({"topics": {"ev": {"partitions": {"1": {"ls_offset": 50, "lo_offset": 0}}}}}))
        assert metrics.calls["consumer_lag"][-1] == ("ev", 1, 20)
    finally:
        part.close()
    fresh = source.build_part("in", "ev#00001", None)  # nothing read yet: the lag is the whole partition
    try:
        fresh._process_stats(json.dumps({"topics": {"ev": {"partitions": {"1": {"ls_offset": 50, "lo_offset": 8}}}}}))
        assert metrics.calls["consumer_lag"][-1] == ("ev", 1, 42)
        fresh._process_stats(json.dumps({"topics": {"ev": {"partitions": {"1": {"ls_offset": -1}}}}}))
        assert metrics.calls["consumer_lag"][-1] == ("ev", 1, 42)  # not known: nothing reported
    finally:
        fresh.close()
