"""What the benchmarks that go through the real broker share: Kafka helpers, the fixed-rate latency
method, and the machine description and table rendering of their reports.

The latency method (`measure_latency`): the system under test runs in a thread; a producer thread
sends events at a fixed rate to its input topic, a reader thread consumes its output topic, and the
latency of an event is the reader's receive time minus the input message's Kafka timestamp. Warm-up
events (other ids) go first and are not counted. Used by `bench.e2e_kafka` (Headwater vs a plain
confluent-kafka loop) and `bench.candidates` (Headwater with 0, 2, 4 candidates, and a slow one).
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import confluent_kafka
import numpy as np
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from daemon.config import Settings
from daemon.kafka_client import make_producer, produce_all
from daemon.kafka_local import KAFKA_VERSION
from daemon.topics import delete_topics, ensure_topics
from daemon.workload import Workload, WorkloadSpec

__all__ = [
    "CREATED",
    "REPO",
    "BenchError",
    "Deadline",
    "Headers",
    "HeadwaterTopics",
    "KafkaKnobs",
    "LatencyKnobs",
    "LatencyRun",
    "Payload",
    "Reader",
    "Received",
    "Runner",
    "check_settings",
    "cpu_seconds",
    "create_topics",
    "delete_topics",
    "dist_version",
    "machine_info",
    "make_events",
    "measure_latency",
    "measured_outputs",
    "new_consumer",
    "partitions_of",
    "percentiles",
    "ratio",
    "read_topic",
    "render_markdown_table",
    "render_text",
    "summarize_latency",
    "topic_size",
    "warmup_events",
]

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parent.parent

Payload = tuple[bytes, bytes]  # (key, value) of one event
Headers = list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None] | None
# receive time (ms), the output's Kafka timestamp (ms, set at its produce()), key, value, headers
Received = tuple[float, int, bytes | None, bytes | None, Headers]


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to (a bound was hit, an output is missing)."""


class KafkaKnobs(Protocol):
    """Where the broker is and how many partitions each fresh topic gets."""

    @property
    def bootstrap(self) -> str: ...
    @property
    def partitions(self) -> int: ...


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


# -- helpers --------------------------------------------------------------------------------------


class Deadline:
    """A point in time that every wait loop checks; ``check`` raises once it has passed."""

    def __init__(self, seconds: float, what: str) -> None:
        self.at = time.monotonic() + seconds
        self.what = what

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def check(self) -> None:
        if self.passed():
            msg = f"timed out: {self.what}"
            raise BenchError(msg)


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads, librdkafka's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_events(n: int) -> list[Payload]:
    """The first ``n`` valid events of the synthetic workload: no malformed records, no delayed labels."""
    spec = WorkloadSpec(n_events=n, malformed_every=0, unmatched_labels=0, delayed_share=0.0, inline_share=0.5)
    out = [(i.key, i.value) for i in Workload(spec).items() if i.kind == "events"]
    if len(out) != n or any(k is None or v is None for k, v in out):
        msg = f"the workload gave {len(out)} events, wanted {n}"
        raise BenchError(msg)
    return [(k, v) for k, v in out if k is not None and v is not None]


def warmup_events(template: list[Payload], tag: str) -> Iterator[Payload]:
    """Valid events with ids that the measured events never use, cycling over ``template``."""
    i = 0
    while True:
        body = orjson.loads(template[i % len(template)][1])
        body["id"] = f"warm-{tag}-{i}"
        yield body["id"].encode(), orjson.dumps(body)
        i += 1


def partitions_of(topic: str, n: int, offset: int = OFFSET_BEGINNING) -> list[TopicPartition]:
    return [TopicPartition(topic, p, offset) for p in range(n)]


def new_consumer(bootstrap: str, **extra: Any) -> Consumer:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"bench-{uuid.uuid4().hex[:8]}",  # required by librdkafka; assign() never joins it
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    config.update(extra)
    return Consumer(config)


def topic_size(bootstrap: str, topic: str, partitions: int, timeout_s: float = 10.0) -> int:
    """Messages on ``topic``: the sum of the high watermarks (no transactions, nothing deleted)."""
    consumer = new_consumer(bootstrap)
    try:
        return sum(consumer.get_watermark_offsets(tp, timeout=timeout_s)[1] for tp in partitions_of(topic, partitions))
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, partitions: int, expected: int, deadline: Deadline) -> list[Message]:
    """Every message on ``topic`` until ``expected`` were read; raises if the deadline passes first."""
    consumer = new_consumer(bootstrap)
    consumer.assign(partitions_of(topic, partitions))
    got: list[Message] = []
    try:
        while len(got) < expected:
            deadline.check()
            for msg in consumer.consume(2000, 0.2):
                if msg.error() is None:
                    got.append(msg)
    finally:
        consumer.close()
    return got


CREATED: list[str] = []  # every topic this run made; deleted at the end, never between phases


def create_topics(p: KafkaKnobs, names: list[str]) -> None:
    """Create fresh topics (``p.partitions`` each) and remember them for the clean-up."""
    ensure_topics(p.bootstrap, names, p.partitions)
    CREATED.extend(n for n in names if n not in CREATED)


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


# -- Headwater's topics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadwaterTopics:
    events: str
    labels: str
    predictions: str
    dead_letters: str
    model_events: str

    @classmethod
    def fresh(cls, phase: str, events: str | None = None) -> HeadwaterTopics:
        uid = uuid.uuid4().hex[:10]
        base = f"bench.hw.{phase}"
        return cls(
            events=events or f"{base}.events.{uid}",
            labels=f"{base}.labels.{uid}",
            predictions=f"{base}.predictions.{uid}",
            dead_letters=f"{base}.dead-letters.{uid}",
            model_events=f"{base}.model-events.{uid}",
        )

    def all(self) -> list[str]:
        return [self.events, self.labels, self.predictions, self.dead_letters, self.model_events]


def check_settings(settings: Settings, topics: HeadwaterTopics) -> None:
    """HEADWATER_* variables override what the benchmark asks for; refuse to measure something else."""
    k = settings.kafka
    got = (k.events_topic, k.labels_topic, k.predictions_topic, k.dead_letter_topic, k.model_events_topic)
    if got != tuple(topics.all()):
        msg = f"the environment overrides the benchmark's topics ({got}); unset HEADWATER_KAFKA__*"
        raise BenchError(msg)


# -- latency --------------------------------------------------------------------------------------


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

        sender = Runner("bench-sender", send)
        sender.start()
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


# -- report ---------------------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    """``git args...`` in the repository: its output, or None if git cannot tell."""
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def machine_info(p: KafkaKnobs) -> dict[str, Any]:
    """The machine, the versions and the commit a report was measured on (``headwater_dirty``: the
    measured code differs from that commit)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "kafka_version": KAFKA_VERSION,
        "kafka_brokers": p.bootstrap,
        "confluent_kafka": dist_version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "bytewax": dist_version("bytewax"),
        "river": dist_version("river"),
        "torch": dist_version("torch"),
        "headwater_commit": _git("rev-parse", "--short", "HEAD"),
        "headwater_dirty": None if status is None else bool(status),
        "headwater_env": sorted(k for k in os.environ if k.startswith("HEADWATER_")),
    }


def dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        pairs = enumerate(zip(row, widths, strict=True))
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in pairs))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown_table(rows: list[list[str]]) -> list[str]:
    """``rows`` (a header, then the body) as Markdown lines: first column left, the rest right."""
    md = ["| " + " | ".join(rows[0]) + " |"]
    md.append("|" + "|".join([":---"] + ["---:"] * (len(rows[0]) - 1)) + "|")
    md.extend("| " + " | ".join(row) + " |" for row in rows[1:])
    return md
