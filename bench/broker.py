"""The broker side of the benchmarks that go through the real Kafka: fresh topics (remembered, and
deleted at the end of a run), consumers that read a topic from the beginning, the synthetic events,
and Headwater's topics and settings for one run.

Every benchmark that runs a daemon gives it fresh topics (`HeadwaterTopics.fresh`) through
`kafka_section`, and refuses to measure when ``HEADWATER_*`` variables override them
(`check_settings`).
"""

from __future__ import annotations

import resource
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from daemon.config import Settings
from daemon.topics import delete_topics, ensure_topics
from daemon.workload import Workload, WorkloadSpec

__all__ = [
    "CREATED",
    "BenchError",
    "Deadline",
    "Headers",
    "HeadwaterTopics",
    "KafkaKnobs",
    "Payload",
    "Received",
    "check_settings",
    "cpu_seconds",
    "create_topics",
    "delete_topics",
    "kafka_section",
    "make_events",
    "new_consumer",
    "partitions_of",
    "read_records",
    "read_topic",
    "topic_size",
    "warmup_events",
]

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


# -- events ---------------------------------------------------------------------------------------


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


# -- topics ---------------------------------------------------------------------------------------


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


def read_records(p: KafkaKnobs, topic: str, deadline: Deadline) -> list[dict[str, Any]]:
    """Every message on ``topic`` (as many as it holds now), each value decoded as a JSON object."""
    n = topic_size(p.bootstrap, topic, p.partitions)
    return [orjson.loads(m.value() or b"{}") for m in read_topic(p.bootstrap, topic, p.partitions, n, deadline)]


CREATED: list[str] = []  # every topic this run made; deleted at the end, never between phases


def create_topics(p: KafkaKnobs, names: list[str], made_by_daemon: tuple[str, ...] = ()) -> None:
    """Create fresh topics (``p.partitions`` each) and remember them, and those the daemon will
    make (its serving-table topic), for the clean-up."""
    ensure_topics(p.bootstrap, names, p.partitions)
    CREATED.extend(n for n in [*names, *made_by_daemon] if n not in CREATED)


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

    @property
    def serving(self) -> str:
        """The serving-table topic (the daemon makes it: one partition, compacted)."""
        return f"{self.model_events}.serving"

    @property
    def control(self) -> str:
        """The control topic (the daemon makes it: one partition)."""
        return f"{self.model_events}.control"

    @property
    def quarantine(self) -> str:
        """The quarantine topic (the daemon makes it)."""
        return f"{self.model_events}.quarantine"

    @property
    def daemon_made(self) -> tuple[str, ...]:
        """The topics the daemon makes itself, to delete with the others."""
        return (self.serving, self.control, self.quarantine)


ADMIN = {"port": 0}  # the admin API on a free port: runs side by side never fight over one


def kafka_section(p: KafkaKnobs, topics: HeadwaterTopics) -> dict[str, Any]:
    """The ``kafka`` section of a daemon's settings: this broker, these topics, ``p.partitions``."""
    return {
        "bootstrap_servers": p.bootstrap,
        "events_topic": topics.events,
        "labels_topic": topics.labels,
        "predictions_topic": topics.predictions,
        "dead_letter_topic": topics.dead_letters,
        "model_events_topic": topics.model_events,
        "serving_topic": topics.serving,
        "control_topic": topics.control,
        "quarantine_topic": topics.quarantine,
        "partitions": p.partitions,
    }


def check_settings(settings: Settings, topics: HeadwaterTopics) -> None:
    """HEADWATER_* variables override what the benchmark asks for; refuse to measure something else."""
    k = settings.kafka
    got = (k.events_topic, k.labels_topic, k.predictions_topic, k.dead_letter_topic, k.model_events_topic)
    if got != tuple(topics.all()):
        msg = f"the environment overrides the benchmark's topics ({got}); unset HEADWATER_KAFKA__*"
        raise BenchError(msg)
