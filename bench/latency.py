"""The fixed-rate latency method of the benchmarks that go through the real broker.

The system under test runs in a thread (`Runner`); a producer thread sends events at a fixed rate
to its input topic, a reader thread (`Reader`) consumes its output topic, and the latency of an
event is the reader's receive time minus the input message's Kafka timestamp. Warm-up events
(other ids) go first and are not counted (`measure_latency`); `summarize_latency` splits each
latency into the system's part and delivery. Used by `bench.e2e_kafka` (Headwater vs a plain
confluent-kafka loop), `bench.candidates` (0, 2, 4 candidates and a slow one) and `bench.moa`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson

from bench.broker import (
    BenchError,
    Deadline,
    KafkaKnobs,
    Payload,
    Received,
    cpu_seconds,
    new_consumer,
    partitions_of,
    warmup_events,
)
from daemon.config import Settings
from daemon.kafka_client import make_producer, produce_all
from daemon.runner import run_daemon

__all__ = [
    "LatencyKnobs",
    "LatencyRun",
    "Reader",
    "Runner",
    "batch_summary",
    "headwater_in_thread",
    "in_thread",
    "measure_latency",
    "measured_outputs",
    "percentiles",
    "prediction_ts",
    "summarize_latency",
]

log = logging.getLogger("bench")


class LatencyKnobs(KafkaKnobs, Protocol):
    """The parameters of one fixed-rate latency measurement."""

    @property
    def rate(self) -> float: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def warmup_s(self) -> float: ...
    @property
    def timeout_s(self) -> float: ...


class Reader(threading.Thread):
    """Consumes the output topic from the beginning and stamps every message with its receive time."""

    def __init__(self, p: KafkaKnobs, topic: str, deadline: Deadline) -> None:
        super().__init__(name="bench-reader", daemon=True)
        self.consumer = new_consumer(p.bootstrap)
        self.consumer.assign(partitions_of(topic, p.partitions))
        self.deadline = deadline
        self.stop_event = threading.Event()
        self.received: list[Received] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            consumer, received = self.consumer, self.received
            while not self.stop_event.is_set() and not self.deadline.passed():
                # poll() returns as soon as one message is there (consume(n, t) would wait for n or t),
                # then consume(n, 0) takes what is already fetched without waiting.
                first = consumer.poll(0.05)
                if first is None:
                    continue
                now_ms = time.time() * 1000
                for m in [first, *consumer.consume(1000, 0)]:
                    if m.error() is None:
                        received.append((now_ms, m.timestamp()[1], m.key(), m.value(), m.headers()))
        except BaseException as exc:
            self.error = exc
        finally:
            self.consumer.close()


class Runner(threading.Thread):
    """Runs a system's blocking entry point and keeps what it raised."""

    def __init__(self, name: str, target: Callable[[], object]) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None
        self.returned_at: float | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:
            self.error = exc
        finally:
            self.returned_at = time.monotonic()


def in_thread(name: str, target: Callable[[], object]) -> Runner:
    """``target`` started in a `Runner` thread called ``name``."""
    runner = Runner(name, target)
    runner.start()
    return runner


def headwater_in_thread(settings: Settings) -> Callable[[threading.Event, Deadline], Runner]:
    """A ``start_system`` for `measure_latency`: `run_daemon` with ``settings`` in a thread, until the stop event."""

    def start(stop: threading.Event, deadline: Deadline) -> Runner:
        return in_thread("bench-headwater", lambda: run_daemon(settings, stop, create_topics=False))

    return start


def prediction_ts(item: Received) -> tuple[str, int | None]:
    """The event id of a Headwater prediction, and the input timestamp it carries (``event_ts_ms``)."""
    body = orjson.loads(item[3] or b"{}")
    return str(body.get("id")), body.get("event_ts_ms")


@dataclass(frozen=True)
class LatencyRun:
    """What one fixed-rate run saw, before it is summarised: every output the reader received."""

    name: str
    events: int
    wanted: frozenset[str]
    received: list[Received]
    send_s: float
    warmup_events: int
    warmup_s: float
    cpu_s: float
    stop_requested_ms: float  # wall clock (ms) when the stop event was set
    stop_s: float | None  # how long the system took to return after that
    stopped: bool
    missing: int  # measured events without an output when the wait ended (0 unless allowed)


def measure_latency(
    p: LatencyKnobs,
    name: str,
    events: list[Payload],
    events_topic: str,
    out_topic: str,
    start_system: Callable[[threading.Event, Deadline], Runner],
    *,
    require_all: bool = True,
) -> LatencyRun:
    """Send ``events`` at ``p.rate`` while the system runs, until every output came (or, with
    ``require_all=False``, until the phase's deadline), then stop the system."""
    deadline = Deadline(p.timeout_s + p.duration_s + p.warmup_s, f"{name} latency phase")
    reader = Reader(p, out_topic, deadline)
    reader.start()
    stop = threading.Event()
    system = start_system(stop, deadline)
    producer = make_producer(p.bootstrap, **{"linger.ms": 1})
    cpu0 = cpu_seconds()
    missing = 0
    try:
        # Warm-up, with ids that are not measured: a trickle until the first output shows the system
        # is up, then warmup_s at the measured rate, so that no start-up backlog is measured.
        warm = warmup_events(events[:1000], name)
        t0, sent, steady_from, steady_sent = time.perf_counter(), 0, 0.0, 0
        while True:
            if system.error is not None or not system.is_alive():
                msg = f"{name} stopped during the warm-up: {system.error!r}"
                raise BenchError(msg)
            deadline.check()
            now = time.perf_counter()
            if not steady_from:
                if reader.received:
                    steady_from = now
                    continue
                key, value = next(warm)
                producer.produce(events_topic, value, key)
                producer.poll(0)
                sent += 1
                time.sleep(0.05)
                continue
            elapsed = now - steady_from
            if elapsed >= p.warmup_s:
                break
            ahead = steady_sent / p.rate - elapsed
            if ahead > 0.001:
                time.sleep(min(ahead, 0.05))
                continue
            key, value = next(warm)
            producer.produce(events_topic, value, key)
            producer.poll(0)
            sent += 1
            steady_sent += 1
        warm_sent, warmup_s = sent, time.perf_counter() - t0
        if producer.flush(30):
            msg = f"{name}: warm-up events not acknowledged"
            raise BenchError(msg)

        # Measured events, sent at the fixed rate by a producer thread.
        send_times: dict[str, float] = {}

        def send() -> None:
            send_times["start"] = time.perf_counter()
            produce_all(producer, ((events_topic, k, v) for k, v in events), rate=p.rate)
            send_times["end"] = time.perf_counter()

        sender = in_thread("bench-sender", send)
        sender.join(deadline.left())
        if sender.is_alive() or sender.error is not None:
            msg = f"{name}: the producer thread did not finish ({sender.error!r})"
            raise BenchError(msg)

        wanted = {k.decode() for k, _ in events}
        seen: set[str] = set()
        scanned = 0
        while True:  # wait for every measured output
            received = reader.received
            upto = len(received)
            seen.update(item[2].decode() for item in received[scanned:upto] if item[2] is not None)
            scanned = upto
            missing = len(wanted - seen)
            if not missing:
                break
            if system.error is not None or not system.is_alive():
                msg = f"{name} stopped before every output came: {system.error!r}"
                raise BenchError(msg)
            if deadline.passed():
                if not require_all:
                    log.warning("%s: %d of %d outputs missing at the deadline", name, missing, len(wanted))
                    break
                msg = f"{name}: {missing} of {len(wanted)} outputs missing at the deadline"
                raise BenchError(msg)
            time.sleep(0.1)
    finally:
        stop_at, stop_wall_ms = time.monotonic(), time.time() * 1000
        stop.set()
        system.join(p.timeout_s)
        reader.stop_event.set()
        reader.join(10)
    cpu = cpu_seconds() - cpu0
    stop_s = (system.returned_at - stop_at) if system.returned_at is not None else None
    if system.error is not None:
        msg = f"{name} raised: {system.error!r}"
        raise BenchError(msg) from system.error
    if reader.error is not None:
        msg = f"reader raised: {reader.error!r}"
        raise BenchError(msg) from reader.error
    return LatencyRun(
        name=name,
        events=len(events),
        wanted=frozenset(wanted),
        received=reader.received,
        send_s=send_times["end"] - send_times["start"],
        warmup_events=warm_sent,
        warmup_s=warmup_s,
        cpu_s=cpu,
        stop_requested_ms=stop_wall_ms,
        stop_s=stop_s,
        stopped=not system.is_alive(),
        missing=missing,
    )


def measured_outputs(
    run: LatencyRun, input_ts: Callable[[Received], tuple[str, int | None]]
) -> tuple[list[tuple[Received, int]], int]:
    """The first output of each measured event with its input timestamp (ms), and the duplicates."""
    out: list[tuple[Received, int]] = []
    seen_ids: set[str] = set()
    duplicates = 0
    for item in run.received:
        event_id, ts_ms = input_ts(item)
        if event_id not in run.wanted:
            continue
        if event_id in seen_ids:
            duplicates += 1
            continue
        seen_ids.add(event_id)
        if ts_ms is None:
            msg = f"{run.name}: output for {event_id} has no input timestamp"
            raise BenchError(msg)
        out.append((item, ts_ms))
    return out, duplicates


def summarize_latency(run: LatencyRun, input_ts: Callable[[Received], tuple[str, int | None]]) -> dict[str, Any]:
    """Latency = receive time - input timestamp, split into the system's part (input produced →
    output produced) and delivery (output produced → received)."""
    outputs, duplicates = measured_outputs(run, input_ts)
    latencies = [item[0] - ts_ms for item, ts_ms in outputs]
    to_output: list[float] = [item[1] - ts_ms for item, ts_ms in outputs]  # the system's part
    delivery = [item[0] - item[1] for item, _ in outputs]
    return {
        "events": run.events,
        "outputs": len(outputs),
        "duplicates": duplicates,
        "achieved_send_rate": round(run.events / run.send_s, 1),
        "warmup_events": run.warmup_events,
        "warmup_s": round(run.warmup_s, 2),
        **percentiles(latencies),
        "input_to_output_produced": percentiles(to_output),
        "output_produced_to_received": percentiles(delivery),
        "process_cpu_s": round(run.cpu_s, 2),
        "stopped_after_stop_s": round(run.stop_s, 3) if run.stop_s is not None else None,
        "stopped_within_bound": run.stopped,
    }


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values, dtype=np.float64)
    p50, p90, p99, p999 = np.percentile(arr, [50, 90, 99, 99.9]).tolist()
    return {
        "p50_ms": round(p50, 2),
        "p90_ms": round(p90, 2),
        "p99_ms": round(p99, 2),
        "p999_ms": round(p999, 2),
        "max_ms": round(float(arr.max()), 2),
        "mean_ms": round(float(arr.mean()), 2),
    }


def batch_summary(count: int, total: int, largest: int) -> dict[str, Any]:
    """Micro-batches seen: how many, their mean size (None without any), the largest."""
    return {"count": count, "mean_size": round(total / count, 1) if count else None, "max_size": largest}
