"""Small Kafka client helpers shared by the demo, the tests and the benchmarks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from dataflows.kafka_io import produce_waiting

__all__ = ["ProduceError", "make_producer", "produce_all", "read_all", "read_until"]


class ProduceError(RuntimeError):
    """The broker did not take every message."""


def make_producer(bootstrap: str, **extra: Any) -> Producer:
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    config.update(extra)
    return Producer(config)


def produce_all(
    producer: Producer,
    messages: Iterable[tuple[str, bytes | None, bytes | None]],
    rate: float | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Produce ``(topic, key, value)`` messages, at ``rate`` per second if given; fail on any loss."""
    errors: list[str] = []

    def report(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(str(err))

    start = time.perf_counter()
    sent = 0
    for topic, key, value in messages:
        if rate:
            ahead = sent / rate - (time.perf_counter() - start)
            if ahead > 0.001:
                time.sleep(ahead)
        produce_waiting(producer, topic, key, value, report)
        producer.poll(0)
        sent += 1
        if on_sent is not None and sent % 1000 == 0:
            on_sent(sent)
    left = producer.flush(60)
    if errors or left:
        msg = f"{len(errors)} delivery errors ({errors[:3]}), {left} unacknowledged"
        raise ProduceError(msg)
    return sent


def read_until(
    bootstrap: str,
    topics: list[str],
    done: Callable[[list[Message]], bool],
    timeout_s: float,
    from_beginning: bool = True,
) -> list[Message]:
    """Consume ``topics`` until ``done(messages)`` or the timeout; returns every message read."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"headwater-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not done(got):
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is None:
                    got.append(msg)
    finally:
        consumer.close()
    return got


def read_all(bootstrap: str, topics: list[str], timeout_s: float = 30.0) -> list[Message]:
    """Every message the topics hold right now: each partition is read up to its high-water mark.

    Unlike `read_until`, this sees duplicates too, so a test can assert exact counts.
    """
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"headwater-reader-{uuid.uuid4().hex[:8]}",
         "enable.auto.commit": False}
    )  # fmt: skip
    try:
        ends: dict[tuple[str, int], int] = {}
        assignment = []
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            for partition in metadata.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                if high > low:
                    ends[(topic, partition)] = high
                    assignment.append(TopicPartition(topic, partition, low))
        consumer.assign(assignment)
        got: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                msg = f"read_all: partitions {sorted(ends)} not read to their end within {timeout_s}s"
                raise TimeoutError(msg)
            for message in consumer.consume(1000, 0.2):
                if message.error() is not None:
                    continue
                got.append(message)
                key = (message.topic() or "", message.partition() or 0)
                if key in ends and (message.offset() or 0) >= ends[key] - 1:
                    del ends[key]
        return got
    finally:
        consumer.close()
