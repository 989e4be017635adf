"""Each model's latest report (rolling accuracy, lag), as the model-events topic carries it.

The train step may run in another process of a cluster, so the admin API does not ask it: it
follows the model-events topic, where the train step writes a `ModelReport` per model and labelled
micro-batch, and keeps the latest of each model. It starts at the topic's end: a board shows no
accuracy or lag for a model until its next report (within a micro-batch of labels while the
daemon learns), rather than replaying a topic that may hold days of reports.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from dataflows.records import ModelReport

__all__ = ["ModelReports", "ReportFollower"]

log = logging.getLogger("headwater")


class ModelReports:
    """The latest report of each (group, model); thread-safe.

    >>> reports = ModelReports()
    >>> reports.put(ModelReport(group="g", model="champion", version="g/1", role="champion", ts_ms=1, batch=1))
    >>> [r.version for r in reports.latest("g").values()]
    ['g/1']
    """

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], ModelReport] = {}
        self._lock = threading.Lock()

    def put(self, report: ModelReport) -> None:
        key = (report.group, report.model)
        with self._lock:
            current = self._latest.get(key)
            if current is None or (report.batch, report.ts_ms) >= (current.batch, current.ts_ms):
                self._latest[key] = report

    def latest(self, group: str) -> dict[str, ModelReport]:
        """The group's latest report of each model, by model (slot) name."""
        with self._lock:
            return {model: r for (g, model), r in self._latest.items() if g == group}


_decode = msgspec.json.Decoder(ModelReport).decode


class ReportFollower(threading.Thread):
    """Reads every partition of the model-events topic from its end on, into ``reports``."""

    def __init__(
        self, brokers: str, topic: str, reports: ModelReports, consumer_config: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(name="headwater-report-follower", daemon=True)
        self.topic, self.reports = topic, reports
        config = {"bootstrap.servers": brokers, "group.id": f"headwater-admin-{uuid.uuid4().hex[:12]}",
                  "enable.auto.commit": False}  # fmt: skip
        self._consumer = Consumer(config | dict(consumer_config or {}))
        self._halt = threading.Event()
        self.assigned = threading.Event()  # set once reading from the end of every partition
        self.error: BaseException | None = None

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        try:
            partitions = self._partitions()
            if partitions is None:
                return
            self._consumer.assign([TopicPartition(self.topic, p, OFFSET_END) for p in partitions])
            self.assigned.set()
            while not self._halt.is_set():
                for message in self._consumer.consume(500, 0.2):
                    if message.error() is None:
                        self._read(message.value())
        except BaseException as exc:  # the board goes without accuracy and lag; the daemon goes on
            self.error = exc
            log.exception("the admin API's report follower of %s stopped: boards show no accuracy or lag", self.topic)
        finally:
            self._consumer.close()

    def _partitions(self) -> list[int] | None:
        """The topic's partitions, once it exists (the daemon creates it); None if stopped first."""
        while not self._halt.is_set():
            try:
                found = self._consumer.list_topics(self.topic, timeout=2).topics[self.topic]
                if found.error is None:
                    return sorted(found.partitions)
            except KafkaException as exc:
                if exc.args[0].code() not in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT):
                    raise
            self._halt.wait(1.0)
        return None

    def _read(self, value: bytes | None) -> None:
        try:
            self.reports.put(_decode(value or b""))
        except (msgspec.ValidationError, msgspec.DecodeError):
            return  # a verdict, decision or command record, or not ours
