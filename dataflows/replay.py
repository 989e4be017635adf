"""Replay: the labelled examples of stretches of the input topics, read again off the live flow,
for a candidate that learns them before it joins the group (an operator's ``replay`` command,
`dataflows.train.commands`).

`check_ranges` asks the broker, at once, whether every stretch is still there (retention may have
deleted its start: the error names the earliest offset left). `Replay` reads them on a thread of
its own with a consumer of its own, decodes every message as serving does (what was dead-lettered
then is skipped now), and makes the examples: events with an inline label, and delayed labels
joined by id to events read in the same stretches. The train step collects the result between two
micro-batches and adds the candidate, its first job those examples with the stretches as their
offsets: its lineage starts with them.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np
import numpy.typing as npt
from confluent_kafka import Consumer, TopicPartition

from dataflows.decode import Decoder
from dataflows.ports import OffsetRange
from dataflows.records import Event, Label

__all__ = ["MAX_REPLAY_MESSAGES", "Replay", "ReplayError", "check_ranges"]

MAX_REPLAY_MESSAGES = 2_000_000  # what one replay may read: its examples are held in memory
Examples = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]


class ReplayError(ValueError):
    """A stretch cannot be replayed: the message says why."""


def _consumer(brokers: str, consumer_config: Mapping[str, Any]) -> Consumer:
    config = {k: v for k, v in consumer_config.items() if k not in ("group.id", "enable.auto.commit")}
    return Consumer({"bootstrap.servers": brokers, "group.id": f"headwater-replay-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "auto.offset.reset": "error", **config})  # fmt: skip


def check_ranges(
    brokers: str, consumer_config: Mapping[str, Any], ranges: Sequence[OffsetRange], topics: Sequence[str],
    timeout_s: float = 10.0,
) -> None:  # fmt: skip
    """Refuse stretches that are not on the input topics, are deleted (in part), not written yet, or
    more than `MAX_REPLAY_MESSAGES` in all."""
    if not ranges:
        msg = "replay: no stretch of offsets given"
        raise ReplayError(msg)
    total = 0
    consumer = _consumer(brokers, consumer_config)
    try:
        for r in ranges:
            if r.topic not in topics:
                msg = f"replay: {r.topic} is not an input of the group (inputs: {list(topics)})"
                raise ReplayError(msg)
            if r.first > r.last or r.first < 0:
                msg = f"replay: {r.topic}/{r.partition} {r.first}..{r.last} is not a stretch of offsets"
                raise ReplayError(msg)
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(r.topic, r.partition), timeout=timeout_s)
            except Exception as exc:  # an unknown partition, or the broker did not answer
                msg = f"replay: cannot read the offsets of {r.topic}/{r.partition}: {exc}"
                raise ReplayError(msg) from None
            if r.first < low:
                msg = (f"replay: {r.topic}/{r.partition} offsets before {low} were deleted (retention); "
                       f"the earliest still there is {low}")  # fmt: skip
                raise ReplayError(msg)
            if r.last >= high:
                msg = f"replay: {r.topic}/{r.partition} holds offsets up to {high - 1}, not {r.last}"
                raise ReplayError(msg)
            total += r.last - r.first + 1
    finally:
        consumer.close()
    if total > MAX_REPLAY_MESSAGES:
        msg = f"replay: {total} messages is more than one replay may read ({MAX_REPLAY_MESSAGES}); split it"
        raise ReplayError(msg)


class Replay:
    """The examples of ``ranges``, read on a thread of its own; ``result`` when done."""

    def __init__(
        self, brokers: str, consumer_config: Mapping[str, Any], ranges: Sequence[OffsetRange], decoder: Decoder,
        n_features: int, timeout_s: float = 600.0,
    ) -> None:  # fmt: skip
        self.ranges = tuple(sorted(ranges))
        self.result: Future[Examples] = Future()
        self._args = (brokers, dict(consumer_config), decoder, n_features, timeout_s)
        self._thread = threading.Thread(target=self._run, name="headwater-replay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result.set_result(self._read(*self._args))
        except BaseException as exc:
            self.result.set_exception(exc)

    def _read(
        self, brokers: str, consumer_config: dict[str, Any], decoder: Decoder, n_features: int, timeout_s: float
    ) -> Examples:
        events: dict[str, Event] = {}
        labels: list[Label] = []
        rows_x: list[list[float]] = []
        rows_y: list[int] = []
        consumer = _consumer(brokers, consumer_config)
        try:
            for r in self.ranges:
                consumer.assign([TopicPartition(r.topic, r.partition, r.first)])
                offset = r.first
                while offset <= r.last:
                    batch = consumer.consume(min(10_000, r.last - offset + 1), timeout_s)
                    if not batch:
                        msg = f"replay: nothing came from {r.topic}/{r.partition} at {offset} within {timeout_s:g} s"
                        raise ReplayError(msg)
                    for message in batch:
                        if message.error() is not None:
                            raise ReplayError(f"replay: {r.topic}/{r.partition}: {message.error()}")
                        offset = (message.offset() or 0) + 1
                        if offset - 1 > r.last:
                            break
                        record = decoder(message)
                        if isinstance(record, Event):
                            if record.label is not None:
                                rows_x.append(record.x)
                                rows_y.append(record.label)
                            else:
                                events[record.id] = record
                        elif isinstance(record, Label):
                            labels.append(record)
        finally:
            consumer.close()
        for label in labels:  # a delayed label, joined to its event if that was replayed too
            event = events.pop(label.id, None)
            if event is not None:
                rows_x.append(event.x)
                rows_y.append(label.label)
        x = np.asarray(rows_x, dtype=np.float64).reshape(-1, n_features)
        return x, np.asarray(rows_y, dtype=np.int64)
