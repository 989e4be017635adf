"""The serving-table topic: how a change of who serves reaches every process of a cluster.

A Bytewax dataflow has no cycles, so the way back from the group's one train step to the serve
steps of every process goes outside the flow. The promoter writes each new serving table of a
group to a compacted, single-partition topic (key: the group), and waits for the broker to
acknowledge it; every process runs a `ServingFollower` that reads the topic from the beginning
and puts each newer table (by ``seq``) on its own board, with the models loaded from the
registry's checkpoints (the promoter saves a model's checkpoint before the table naming it is
written). Only versions travel, never model bytes, and only from the registry: nothing received
from Kafka is unpickled.

Why a topic and not, say, polling the registry: the order of the changes is the topic's order,
a process that starts late (or restarts) reads the last table of its group at once — compaction
keeps it — and an operator can watch every change of who serves with any Kafka consumer.

Record value (JSON): ``{"group", "seq", "champion", "canary", "canary_share", "seed", "ts_ms"}``;
``canary`` is a version or null.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from daemon.registry import RegistryError
from dataflows.kafka_io import ReliableKafkaSink
from dataflows.ports import Registry
from dataflows.records import KafkaOut
from dataflows.serve import Served, ServingBoard, ServingTable
from learners import Learner

__all__ = ["ServingFollower", "ServingLog", "TableRecord"]

log = logging.getLogger("headwater")


class TableRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One serving table as the topic carries it: versions, not models."""

    group: str
    seq: int
    champion: str
    canary: str | None = None
    canary_share: float = 0.0
    seed: int = 0
    ts_ms: int = 0

    @classmethod
    def of(cls, table: ServingTable, ts_ms: int) -> TableRecord:
        canary = table.canary.version if table.canary is not None else None
        return cls(table.group, table.seq, table.champion.version, canary, table.canary_share, table.seed, ts_ms)


class ServingLog:
    """Writes serving tables to the topic through the flow's own reliable sink (idempotent,
    acks=all); `publish` returns once the broker has acknowledged them, or raises `DeliveryError`."""

    def __init__(self, brokers: str, topic: str, producer_config: Mapping[str, Any] | None = None) -> None:
        self.topic = topic
        self._out = ReliableKafkaSink(brokers, {"linger.ms": 0, **dict(producer_config or {})}).build(
            "serving-tables", 0, 1
        )
        self._lock = threading.Lock()

    def publish(self, table: ServingTable) -> None:
        record = TableRecord.of(table, int(time.time() * 1000))
        self.emit(KafkaOut(self.topic, table.group.encode(), msgspec.json.encode(record)))

    def emit(self, out: KafkaOut) -> None:
        """Write one message and wait for its acknowledgement (also the first champion's decision,
        in a cluster)."""
        with self._lock:
            self._out.write_batch([out])

    def close(self) -> None:
        """Let the producer go (every table was acknowledged as it was written): its threads end
        with it, instead of trying a broker that may be gone for as long as the process lives."""
        with self._lock:
            del self._out


class ServingFollower(threading.Thread):
    """Puts the group's tables from the topic on this process's board, in order, from the first
    record on; `wait` blocks until the board has caught up with the topic's end as it was."""

    def __init__(
        self, brokers: str, topic: str, group: str, registry: Registry, board: ServingBoard,
        consumer_config: Mapping[str, Any] | None = None, on_error: Callable[[BaseException], None] = lambda _: None,
    ) -> None:  # fmt: skip
        super().__init__(name=f"headwater-serving-follower-{group}", daemon=True)
        self.topic, self.group, self.registry, self.board = topic, group, registry, board
        config = {"bootstrap.servers": brokers, "group.id": f"headwater-serving-{uuid.uuid4().hex[:12]}",
                  "enable.auto.commit": False, "enable.partition.eof": True}  # fmt: skip
        self._consumer = Consumer(config | dict(consumer_config or {}))
        self._models: dict[str, Learner] = {}  # the last table's: a canary snapshot comes again at each step
        self._halt = threading.Event()
        self._caught_up = threading.Event()
        self.error: BaseException | None = None
        self.on_error = on_error

    def wait(self, timeout_s: float, until: Callable[[ServingTable], bool] | None = None) -> ServingTable | None:
        """Wait until the topic is read up to its end and — given ``until`` — until the board has
        a table of the group for which ``until`` holds; return the board's table (None: none yet)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.error is not None:
                msg = f"the serving-table follower of {self.topic} failed: {self.error}"
                raise RuntimeError(msg) from self.error
            if self._caught_up.wait(0.05):
                table = self._table()
                if until is None or (table is not None and until(table)):
                    return table
        if not self._caught_up.is_set():
            msg = f"{self.topic} was not read to its end within {timeout_s:.0f}s"
        else:
            msg = f"no serving table for group {self.group!r} that serves the registry's champion came on " \
                  f"{self.topic} within {timeout_s:.0f}s: is the cluster's first process running?"  # fmt: skip
        raise TimeoutError(msg)

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        try:
            partition = TopicPartition(self.topic, 0, OFFSET_BEGINNING)
            low, end = self._watermarks(partition)  # read up to `end` (as it was now), it has caught up
            if end <= low:
                self._caught_up.set()  # an empty topic: nothing to wait for
            self._consumer.assign([partition])
            while not self._halt.is_set():
                latest: TableRecord | None = None  # of what one poll gave, only the last table serves
                reached = False
                for message in self._consumer.consume(100, 0.2):
                    err = message.error()
                    if err is not None:
                        reached = self._at_end(err) or reached
                        continue
                    latest = self._record(message) or latest
                    reached = reached or (message.offset() or 0) >= end - 1
                if latest is not None:
                    self._apply(latest)
                if reached:
                    self._caught_up.set()  # once this poll's table is on the board
        except BaseException as exc:  # reported through wait() and on_error
            self.error = exc
            log.exception("serving-table follower of %s stopped: this process no longer learns who serves", self.topic)
            self.on_error(exc)
        finally:
            self._consumer.close()

    def _watermarks(self, partition: TopicPartition) -> tuple[int, int]:
        """The topic's first and next offsets, once it exists (the first process creates it)."""
        while True:
            try:
                low, high = self._consumer.get_watermark_offsets(partition, timeout=10)
                count = len(self._consumer.list_topics(self.topic, timeout=10).topics[self.topic].partitions)
                if count != 1:  # tables keyed to other partitions would never be read: refuse
                    msg = f"{self.topic} has {count} partitions; the serving-table topic needs exactly 1 (compacted)"
                    raise ValueError(msg)
                return int(low), int(high)
            except KafkaException as exc:
                missing = (KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART)
                if exc.args[0].code() not in missing or self._halt.wait(0.2):
                    raise

    def _at_end(self, err: KafkaError) -> bool:
        if err.code() == KafkaError._PARTITION_EOF:
            return True
        if err.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:  # not created yet: the first process creates it
            raise KafkaException(err)
        return False

    def _record(self, message: Message) -> TableRecord | None:
        if message.key() != self.group.encode():
            return None
        try:
            return msgspec.json.decode(message.value() or b"", type=TableRecord)
        except msgspec.DecodeError as exc:  # not written by a promoter: say so, and keep following
            log.error("%s offset %s is not a serving table (%s): skipped", self.topic, message.offset(), exc)
            return None

    def _apply(self, record: TableRecord) -> None:
        current = self._table()
        if current is not None and current.seq >= record.seq:
            return  # this process published it, or already has a later one
        try:
            canary = Served(record.canary, self._model(record.canary)) if record.canary is not None else None
            champion = Served(record.champion, self._model(record.champion))
        except RegistryError as exc:  # a table of another registry (replaced since): the first process installs anew
            log.warning("group %s: serving table %d on %s is skipped: %s", self.group, record.seq, self.topic, exc)
            return
        table = ServingTable(record.group, champion, canary, record.canary_share if canary else 0.0, record.seed,
                             seq=record.seq)  # fmt: skip
        self._models = {s.version: s.learner for s in (table.champion, canary) if s is not None}
        if self.board.follow(table):
            log.info("group %s: serving table %d from %s: %s serves%s", self.group, record.seq, self.topic,
                     record.champion, f", canary {record.canary}" if canary else "")  # fmt: skip

    def _model(self, version: str) -> Learner:
        model = self._models.get(version)
        if model is None:
            model = self._models[version] = self.registry.load_checkpoint(version)
        return model

    def _table(self) -> ServingTable | None:
        try:
            return self.board.current(self.group)
        except LookupError:
            return None
