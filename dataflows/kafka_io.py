"""Kafka at the edges of the flow: a source that can be stopped gracefully, and a sink that
fails loudly when the broker does not take a message.

Bytewax's stock ``KafkaSink`` ignores delivery reports and what ``flush()`` returns, so a message
the broker refuses is lost without a word; `ReliableKafkaSink` raises instead. Its producer is
idempotent (acks=all, no duplicates from retries) and each ``write_batch`` returns only once
every message of the batch is acknowledged, so an epoch never closes over unsent output.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from bytewax.connectors.kafka import KafkaSource, _KafkaSourcePartition, _list_parts
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from dataflows.ports import Metrics, NullMetrics
from dataflows.records import KafkaBatch, SinkItem

__all__ = ["DeliveryError", "PartNames", "ReliableKafkaSink", "StoppableKafkaSource", "produce_waiting"]

PartNames = Literal["balanced", "legacy"]


class DeliveryError(RuntimeError):
    """The broker did not acknowledge one or more messages."""


class _BatchPartition(_KafkaSourcePartition):  # Bytewax's partition, minus its per-message copy
    """One Kafka partition, read as Bytewax's own partition reads it, but handing on confluent-kafka's
    `Message` objects as they come instead of copying each into a `KafkaSourceMessage` (a dataclass
    of eight fields: 3.6 µs an event, more than decoding it). Ends when ``stop`` is set.

    Reports each poll's records, and the partition's lag with each of librdkafka's statistics
    (``statistics.interval.ms``, 1 s), to ``metrics``."""

    def __init__(self, *args: Any, stop: threading.Event, metrics: Metrics) -> None:
        self._metrics = metrics
        super().__init__(*args)
        self._stop = stop

    def next_batch(self) -> list[Message]:  # type: ignore[override]
        if self._eof or self._stop.is_set():
            raise StopIteration
        # Without waiting: Bytewax polls an empty partition again after 1 ms on its own, without
        # holding up the worker's other partitions. A 1 ms wait here cost a worker 1 ms per idle
        # partition per pass: p50 20.9 → 5.3 ms, p99 51.7 → 15.5 at 5,000 events/s (HISTORY.md).
        msgs: list[Message] = self._consumer.consume(self._batch_size, 0)
        if not msgs:
            return msgs
        for i, msg in enumerate(msgs):
            error = msg.error()
            if error is None:
                continue
            if error.code() == KafkaError._PARTITION_EOF:
                # The end of a partition read with tail=False: what came before it is emitted,
                # the next call ends the partition.
                self._eof = True
                msgs = msgs[:i]
                break
            detail = f"error consuming from Kafka topic {self._topic!r}: {error}"
            raise RuntimeError(detail)
        if msgs:
            self._offset = (msgs[-1].offset() or 0) + 1  # resume after the last message handed on
            self._metrics.consumed(self._topic, len(msgs))
        return msgs

    def _process_stats(self, json_stats: str) -> None:
        super()._process_stats(json_stats)  # Bytewax's own gauge (it skips offset 0)
        topic = json.loads(json_stats).get("topics", {}).get(self._topic, {})
        stats = topic.get("partitions", {}).get(str(self._part_idx), {})
        end = stats.get("ls_offset", -1)  # the last stable offset: the end a read_committed consumer sees
        # The next offset to read; before the first record, the partition's first if reading starts there.
        start = stats.get("lo_offset", -1) if self._offset == OFFSET_BEGINNING else self._offset
        if end >= 0 and start >= 0:  # -1 (-1001, or OFFSET_END before a record): not known yet
            self._metrics.consumer_lag(self._topic, self._part_idx, max(end - start, 0))


class StoppableKafkaSource(KafkaSource):
    """`KafkaSource` whose partitions end when ``stop`` is set: the flow then finishes its last
    epoch (collect flushes, the sink flushes, a final snapshot is taken) instead of being killed.

    Partitions are named ``topic#00003`` (``part_names="balanced"``): Bytewax gives each worker the
    next partition in the names' sorted order, so a topic's partitions, named in a row, alternate
    between workers and every worker serves its share. Bytewax's own names (``3-topic``, kept as
    ``"legacy"`` for recovery stores that hold offsets under them) interleave the labels topic's
    partitions with the events topic's: with 8 and 4 on 2 workers, one worker served 6 of 8.

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
        part_names: PartNames = "balanced",
        metrics: Metrics | None = None,
        **kwargs: Any,
    ) -> None:
        config = {"auto.offset.reset": "earliest", **(add_config or {})}
        super().__init__(brokers, topics, add_config=config, **kwargs)
        self._stop_event = stop
        self._part_names = part_names
        self._metrics = metrics if metrics is not None else NullMetrics()

    def list_parts(self) -> list[str]:
        # As Bytewax does, less the consumer-only setting, which its admin client would warn about.
        config: dict[str, Any] = {"bootstrap.servers": ",".join(self._brokers)}
        config |= {k: v for k, v in self._add_config.items() if k != "auto.offset.reset"}
        parts = list(_list_parts(AdminClient(config), self._topics))  # Bytewax's names: "3-topic"
        if self._part_names == "legacy":
            return parts
        return [f"{topic}#{int(idx):05d}" for idx, topic in (part.split("-", 1) for part in parts)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _BatchPartition:
        # As Bytewax builds its partition (the same consumer settings), with our next_batch.
        if "#" in for_part:
            topic, idx = for_part.rsplit("#", 1)
        else:
            idx, topic = for_part.split("-", 1)
        if topic not in self._topics:
            msg = f"the recovery store holds partition {for_part!r}, not of the topics {list(self._topics)}"
            raise ValueError(msg)
        config = {
            "group.id": "BYTEWAX_IGNORED",  # the offsets live in Bytewax's recovery store, not a group
            "enable.auto.commit": "false",
            "bootstrap.servers": ",".join(self._brokers),
            "enable.partition.eof": str(not self._tail),
            "statistics.interval.ms": 1000,  # Bytewax's consumer-lag gauge
            **self._add_config,
        }
        return _BatchPartition(
            step_id, config, topic, int(idx), self._starting_offset, resume_state, self._batch_size, True,
            stop=self._stop_event, metrics=self._metrics,
        )  # fmt: skip


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


class _SinkPartition(StatelessSinkPartition[SinkItem]):
    def __init__(self, producer: Producer, flush_timeout_s: float, metrics: Metrics | None = None) -> None:
        self._producer = producer
        self._flush_timeout_s = flush_timeout_s
        self._metrics = metrics if metrics is not None else NullMetrics()
        self._errors: list[str] = []
        self._failed: dict[str, int] = {}  # topic → messages refused since the last flush

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            topic = msg.topic() or "?"
            self._errors.append(f"{topic}[{msg.partition()}] key={msg.key()!r}: {err}")
            self._failed[topic] = self._failed.get(topic, 0) + 1

    def write_batch(self, items: list[SinkItem]) -> None:
        for item in items:
            if isinstance(item, KafkaBatch):
                for key, value in zip(item.keys, item.values, strict=True):
                    self._produce(item.topic, key, value)
            else:
                self._produce(item.topic, item.key, item.value)
        self._flush()

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        try:
            produce_waiting(self._producer, topic, key, value, self._on_delivery)
        except KafkaException as exc:  # refused before it left, e.g. larger than message.max.bytes
            self._metrics.delivery_failed(topic, 1)
            msg = f"Kafka refused a message for {topic} (key {key!r}, {len(value)} bytes): {exc}"
            raise DeliveryError(msg) from exc

    def _flush(self) -> None:
        started = time.perf_counter()
        left = self._producer.flush(self._flush_timeout_s)
        self._metrics.flushed(time.perf_counter() - started)
        if self._failed:
            failed, self._failed = self._failed, {}
            for topic, n in failed.items():
                self._metrics.delivery_failed(topic, n)
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


class ReliableKafkaSink(DynamicSink[SinkItem]):
    """Writes `KafkaOut` and `KafkaBatch` items to their topics with an idempotent producer per worker."""

    def __init__(
        self, brokers: str, add_config: Mapping[str, Any] | None = None, flush_timeout_s: float = 30.0,
        metrics: Metrics | None = None,
    ) -> None:  # fmt: skip
        self._config: dict[str, Any] = {
            "bootstrap.servers": brokers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "compression.type": "lz4",
        }
        self._config.update(add_config or {})
        self._flush_timeout_s = flush_timeout_s
        self._metrics = metrics if metrics is not None else NullMetrics()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _SinkPartition:
        config = dict(self._config)
        config.setdefault("client.id", f"headwater-{step_id}-{worker_index}")
        return _SinkPartition(Producer(config), self._flush_timeout_s, self._metrics)
