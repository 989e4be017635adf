"""Kafka at the edges of the flow: a source that can be stopped gracefully, and a sink that
fails loudly when the broker does not take a message.

Bytewax's stock ``KafkaSink`` ignores delivery reports and what ``flush()`` returns, so a message
the broker refuses is lost without a word; `ReliableKafkaSink` raises instead. Its producer is
idempotent (acks=all, no duplicates from retries) and each ``write_batch`` returns only once
every message of the batch is acknowledged, so an epoch never closes over unsent output.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bytewax.connectors.kafka import KafkaSource, KafkaSourceMessage, _list_parts
from bytewax.inputs import StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from dataflows.records import KafkaOut

__all__ = ["DeliveryError", "ReliableKafkaSink", "StoppableKafkaSource", "produce_waiting"]

SourceItem = KafkaSourceMessage[bytes | None, bytes | None]


class DeliveryError(RuntimeError):
    """The broker did not acknowledge one or more messages."""


class _StoppablePartition(StatefulSourcePartition[SourceItem, int | None]):
    def __init__(self, inner: StatefulSourcePartition[SourceItem, int | None], stop: threading.Event) -> None:
        self._inner = inner
        self._stop = stop

    def next_batch(self) -> Iterable[SourceItem]:
        if self._stop.is_set():
            raise StopIteration
        return self._inner.next_batch()

    def snapshot(self) -> int | None:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class StoppableKafkaSource(KafkaSource):
    """`KafkaSource` whose partitions end when ``stop`` is set: the flow then finishes its last
    epoch (collect flushes, the sink flushes, a final snapshot is taken) instead of being killed.

    A resumed offset the broker no longer has (retention deleted unread events while the daemon
    was down, or the topic was recreated) restarts the partition at its oldest event
    (``auto.offset.reset: earliest``). librdkafka's default, ``latest``, would jump to the end and
    skip every event still there, with a log line as the only trace. ``kafka.consumer`` may set it.
    """

    def __init__(
        self,
        brokers: Iterable[str],
        topics: Iterable[str],
        *,
        stop: threading.Event,
        add_config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        config = {"auto.offset.reset": "earliest", **(add_config or {})}
        super().__init__(brokers, topics, add_config=config, **kwargs)
        self._stop_event = stop

    def list_parts(self) -> list[str]:
        # As Bytewax does, less the consumer-only setting, which its admin client would warn about.
        config: dict[str, Any] = {"bootstrap.servers": ",".join(self._brokers)}
        config |= {k: v for k, v in self._add_config.items() if k != "auto.offset.reset"}
        return list(_list_parts(AdminClient(config), self._topics))

    def build_part(  # type: ignore[override]
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _StoppablePartition:
        inner: Any = super().build_part(step_id, for_part, resume_state)
        return _StoppablePartition(inner, self._stop_event)


def produce_waiting(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> None:
    """``producer.produce``, waiting (and serving delivery reports) while the local queue is full."""
    while True:
        try:
            producer.produce(topic, value, key, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


class _SinkPartition(StatelessSinkPartition[KafkaOut]):
    def __init__(self, producer: Producer, flush_timeout_s: float) -> None:
        self._producer = producer
        self._flush_timeout_s = flush_timeout_s
        self._errors: list[str] = []

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}[{msg.partition()}] key={msg.key()!r}: {err}")

    def write_batch(self, items: list[KafkaOut]) -> None:
        for item in items:
            try:
                produce_waiting(self._producer, item.topic, item.key, item.value, self._on_delivery)
            except KafkaException as exc:  # refused before it left, e.g. larger than message.max.bytes
                msg = f"Kafka refused a message for {item.topic} (key {item.key!r}, {len(item.value)} bytes): {exc}"
                raise DeliveryError(msg) from exc
        self._flush()

    def _flush(self) -> None:
        left = self._producer.flush(self._flush_timeout_s)
        if self._errors:
            errors, self._errors = self._errors, []
            shown = "; ".join(errors[:5])
            msg = f"Kafka refused {len(errors)} message(s): {shown}"
            raise DeliveryError(msg)
        if left:
            msg = f"{left} message(s) still unacknowledged after {self._flush_timeout_s}s; is the broker up?"
            raise DeliveryError(msg)

    def close(self) -> None:
        self._flush()


class ReliableKafkaSink(DynamicSink[KafkaOut]):
    """Writes `KafkaOut` records to their topics with an idempotent producer per worker."""

    def __init__(
        self, brokers: str, add_config: Mapping[str, Any] | None = None, flush_timeout_s: float = 30.0
    ) -> None:
        self._config: dict[str, Any] = {
            "bootstrap.servers": brokers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "compression.type": "lz4",
        }
        self._config.update(add_config or {})
        self._flush_timeout_s = flush_timeout_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _SinkPartition:
        config = dict(self._config)
        config.setdefault("client.id", f"headwater-{step_id}-{worker_index}")
        return _SinkPartition(Producer(config), self._flush_timeout_s)
