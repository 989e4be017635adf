"""The whole pipeline in one function: Kafka in → serve (every worker: decode, dead letters,
predict, encode) → Kafka out; served batches → the group's train step (jobs, lanes, gate, promote).

Each step id names the module that holds its code, as ``module__step`` (Bytewax forbids dots).
`build_flow` is handed its collaborators (`FlowDeps`): source, sink, clock, registry, promoter,
serving board, metrics and the control topic's source — so the same flow runs in memory in unit tests (Bytewax's
TestingSource/TestingSink) and on the real broker in production.

The served batches are gathered into the train step's jobs here too (`MicroBatchLogic`, step
``batching__train_jobs``: the id it had when it had a module of its own, kept because Bytewax keys a
recovery snapshot by step id): ``max_size`` records, or whatever arrived within ``max_wait`` of a
job's first batch. Bytewax's ``op.collect`` restarts its timeout on every item, so under a steady
stream a batch only closes when it is full: at 2,000 events/s a 20 ms window held ~300 events and
added ~120 ms of latency. Here the deadline is set by the batch's first item and never moves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from dataflows.config import FlowConfig, Topics
from dataflows.control import Command, command_of
from dataflows.decode import Decoder
from dataflows.migrate import migrate
from dataflows.ports import Clock, Decision, Metrics, NullMetrics, Promoter, Registry
from dataflows.records import (
    DeadLetter,
    KafkaOut,
    ModelEvent,
    QuarantineRecord,
    SinkItem,
    encode_dead_letter,
    encode_model_event,
)
from dataflows.serve import ServedBatch, Server, ServingBoard, merge_served
from dataflows.train import STATE_FORMAT, GroupState, TrainContext, TrainLogic, TrainOutput, new_group_state
from dataflows.train.step import TrainThread

__all__ = [
    "FlowDeps",
    "MicroBatchLogic",
    "MicroBatchState",
    "build_flow",
    "install_champion",
    "resume_group_state",
]

ModelEventRecord = ModelEvent
V = TypeVar("V")


@dataclass(frozen=True)
class FlowDeps:
    """The flow's collaborators. ``source`` yields Kafka messages (anything shaped like
    `dataflows.decode.RawMessage`); ``sink`` takes `KafkaOut` and `KafkaBatch` items (`SinkItem`)."""

    source: Source[Any]
    sink: Sink[SinkItem]
    registry: Registry
    promoter: Promoter
    board: ServingBoard
    metrics: Metrics = field(default_factory=NullMetrics)
    clock: Clock = time.time
    control: Source[Any] | None = None  # the control topic's messages (`dataflows.control`); None: no commands


def install_champion(config: FlowConfig, deps: FlowDeps) -> Decision | None:
    """Make sure the board serves the group's champion, alone, before the flow starts: the
    registry's, or — for a new group — the configured learner, untrained, as version 1 (the
    decision to serve it is returned, for the model-events topic). The daemon calls it at
    start-up, in the first process of a cluster; a board that serves the registry's champion
    without a canary already (followed from the serving-table topic) is left as it is."""
    info = deps.registry.champion(config.group)
    try:
        table = deps.board.current(config.group)
    except LookupError:
        table = None
    if table is not None and (info is None or (table.champion.version == info.id and table.canary is None)):
        return None
    now_ms = int(deps.clock() * 1000)
    if info is not None:
        learner = deps.registry.load_checkpoint(info.id)
        saved = getattr(learner, "categories", None)  # the built-ins keep theirs; a user's learner may not
        wanted = {name: list(values) for name, values in config.schema.categories.items()}
        if saved is not None and dict(saved) != wanted:
            # A category's code is its position in the list: this model learned the codes of its own lists.
            msg = (f"group {config.group!r}: the registry's champion {info.id} was trained with categories "
                   f"{dict(saved)}, the config says {wanted}; restore them, or use a new registry to start "
                   "from an untrained model")  # fmt: skip
            raise ValueError(msg)
        reason = f"restarted: {info.id} is the registry's champion"
    else:
        learner = config.build()
        spec = config.learner.described() | {"untrained": True}
        info = deps.registry.create_version(
            config.group, name="champion", parent=None, learner=learner, config=spec, ts_ms=now_ms
        )
        reason = f"first champion of group {config.group!r}: {config.learner.name}, untrained"
    return deps.promoter.install(config.group, version=info.id, learner=learner, reason=reason, ts_ms=now_ms)


def resume_group_state(resumed: Any, ctx: TrainContext) -> GroupState:
    """The recovered state if it fits the config, a new group if there is none; else a clear error.

    The daemon checks the recovery store's manifest before it starts; this guards the flow itself.
    """
    config = ctx.config
    if resumed is None:
        return new_group_state(ctx)
    # Unpickling skips __init__, so an older snapshot lacks a field in its __dict__ (getattr would
    # find the class-level default instead and wave it through): the format is read from vars().
    wanted = (resumed.name, list(config.schema.features), list(config.schema.classes))
    if (config.group, resumed.features, resumed.classes) != wanted:
        msg = (
            f"group {resumed.name!r}: the snapshot was made for features {resumed.features} and classes "
            f"{resumed.classes}, the config says group {config.group!r}, features "
            f"{list(config.schema.features)} and classes {list(config.schema.classes)}"
        )
        raise ValueError(msg)
    if vars(resumed).get("format") != STATE_FORMAT or not isinstance(resumed, GroupState):
        return migrate(resumed, ctx)  # an older shape is carried forward (or refused, naming it)
    return resumed


def build_flow(config: FlowConfig, deps: FlowDeps, *, installed: Decision | None = None) -> Dataflow:
    """Kafka in → serve (every worker: decode, dead letters, predict, encode) → Kafka out, and the
    served batches → one training step per group (join labels, learn in lanes, gate, promote).

    The board must serve the group's champion already (`install_champion`, at start-up): building
    the flow writes nothing. ``installed``, the decision that installed a new group's first
    champion, goes out with the train step's first outputs.

    Where gating and promotion happen: only in ``train__learn`` (`dataflows.train.step`), the
    group's one writer. It scores the candidates, decides, and acts through ``deps.promoter``,
    which records the decision and publishes the new serving table that ``serve__batch`` reads on
    every worker (and, through the serving-table topic, in every process).

    Serving is stateless over the board's serving table and runs on every worker, on the messages
    of the partitions that worker reads: a micro-batch is what one poll of a partition gave, so
    nothing is exchanged between workers to serve it. Only the served batches cross to the
    group's one training step, gathered into jobs of about ``batching.max_size`` records.
    """
    topics = config.topics
    clock = deps.clock
    deps.board.current(config.group)  # no table: a clear error now, not at the first event
    flow = Dataflow("headwater")

    raw = op.input("kafka_io__in", flow, deps.source)
    decoder = Decoder(config.schema, topics.events, topics.labels)
    server = Server(config.group, decoder, deps.board, list(config.schema.classes), topics, clock, deps.metrics)
    served = op.flat_map_batch("serve__batch", raw, server)
    serve_out = op.flat_map("serve__out", served, lambda step: step.out)
    to_train = op.filter_map("serve__to_train", served, lambda step: step.batch)

    keyed = op.key_on("train__key", to_train, lambda _: config.group)

    def gatherer(resumed: MicroBatchState[ServedBatch] | None) -> MicroBatchLogic[ServedBatch]:
        return MicroBatchLogic(resumed, max_size=config.batch_max_size, max_wait=config.batch_max_wait, weigh=_records)

    gathered = op.stateful_batch("batching__train_jobs", keyed, gatherer)
    jobs = op.map_value("serve__merge", gathered, merge_served)
    train_in: Stream[tuple[str, ServedBatch | Command]] = jobs
    control_dead: list[Stream[DeadLetter]] = []
    if deps.control is not None:  # operators' commands, merged in order into the group's train step
        commands = op.map("control__decode", op.input("control__in", flow, deps.control), command_of)
        control_dead.append(op.filter_map("control__dead_letters", commands, _dead_letter))
        ours = op.filter_map("control__group", commands, lambda c: _command_for(c, config.group))
        train_in = op.merge("control__merge", jobs, op.key_on("control__key", ours, lambda c: c.group))

    ctx = TrainContext(
        config, deps.registry, deps.promoter, deps.metrics, clock,
        drain_on_eof=config.drain_on_eof, delayed_labels=topics.labels is not None, installed=installed,
        board=deps.board,
    )  # fmt: skip

    def trainer(resumed: GroupState | None) -> TrainLogic | TrainThread:
        def build() -> TrainLogic:
            return TrainLogic(resume_group_state(resumed, ctx), ctx)

        if not _off_thread(config):
            return build()
        return TrainThread(build, group=config.group, recovery=config.recovery)

    trained: Stream[TrainOutput] = op.key_rm("train__unkey", op.stateful("train__learn", train_in, trainer))
    train_dead = op.filter_map("train__dead_letters", trained, _dead_letter)
    if control_dead:
        train_dead = op.merge("control__dead_merge", train_dead, *control_dead)
    model_events: Stream[ModelEventRecord] = op.filter_map("train__model_events", trained, _model_event)

    messages = op.merge(
        "records__encode",
        serve_out,
        op.map("records__dead_letter", train_dead, lambda d: _encode_dead(d, topics.dead_letters, clock, deps.metrics)),
        op.map("records__model_event", model_events, lambda e: encode_model_event(e, _topic_of(e, topics))),
    )
    op.output("kafka_io__out", messages, deps.sink)
    return flow


def _off_thread(config: FlowConfig) -> bool:
    """Whether the train step runs on a thread of its own (`dataflows.train.step.TrainThread`).
    Not with inline lanes (tests: every job done as it is handed out), and not with live refresh
    or a vote, whose point is that serving waits (``live_refresh_wait_ms``) for the live fork, or
    the vote's members, to learn the last labels."""
    return config.gate.threaded and not config.gate.live_refresh and config.vote is None


def _records(batch: ServedBatch) -> int:
    return len(batch.events) + len(batch.labels)


def _topic_of(record: ModelEventRecord, topics: Topics) -> str:
    """The quarantine's records go to their own topic (when there is one), the rest to the model events."""
    if isinstance(record, QuarantineRecord) and topics.quarantine:
        return topics.quarantine
    return topics.model_events


def _model_event(record: TrainOutput) -> ModelEventRecord | None:
    return None if isinstance(record, DeadLetter) else record


def _dead_letter(record: object) -> DeadLetter | None:
    return record if isinstance(record, DeadLetter) else None


def _command_for(record: Command | DeadLetter, group: str) -> Command | None:
    """This group's commands; another group's are another daemon's (one control topic may serve many)."""
    return record if isinstance(record, Command) and record.group == group else None


def _encode_dead(record: DeadLetter, topic: str, clock: Clock, metrics: Metrics) -> KafkaOut:
    metrics.dead_lettered(record.reason.value, 1)
    return encode_dead_letter(record, topic, int(clock() * 1000))


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class MicroBatchState(Generic[V]):
    items: list[V] = field(default_factory=list)
    deadline: datetime | None = None


class MicroBatchLogic(StatefulBatchLogic[V, list[V], MicroBatchState[V]]):
    """Per-key batching logic for ``op.stateful_batch``: ``max_size`` items, or whatever arrived
    within ``max_wait`` of a batch's first item. With ``weigh``, an item counts for what it holds (a
    served micro-batch for its records) and is never split: a batch closes once its items weigh
    ``max_size`` or more.

    >>> from datetime import datetime, timedelta, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> logic = MicroBatchLogic(None, max_size=2, max_wait=timedelta(milliseconds=20), now=lambda: t)
    >>> logic.on_batch([1, 2, 3])
    ([[1, 2]], False)
    >>> logic.notify_at() == t + timedelta(milliseconds=20)
    True
    >>> logic.on_notify()
    ([[3]], True)
    """

    def __init__(
        self,
        resumed: MicroBatchState[V] | None,
        *,
        max_size: int,
        max_wait: timedelta,
        now: Callable[[], datetime] = _utc_now,
        weigh: Callable[[V], int] | None = None,
    ) -> None:
        self.state: MicroBatchState[V] = resumed if resumed is not None else MicroBatchState()
        self.max_size = max_size
        self.max_wait = max_wait
        self.now = now
        self.weigh = weigh
        self._weight = sum(map(weigh, self.state.items)) if weigh is not None else 0

    def on_batch(self, values: list[V]) -> tuple[Iterable[list[V]], bool]:
        if self.weigh is not None:
            return self._weighed(values)
        state = self.state
        if not state.items:
            state.deadline = self.now() + self.max_wait
        state.items.extend(values)
        full: list[list[V]] = []
        while len(state.items) >= self.max_size:
            full.append(state.items[: self.max_size])
            state.items = state.items[self.max_size :]
        if not state.items:
            return full, StatefulBatchLogic.DISCARD
        if full:  # the remainder starts a new batch now
            state.deadline = self.now() + self.max_wait
        return full, StatefulBatchLogic.RETAIN

    def _weighed(self, values: list[V]) -> tuple[Iterable[list[V]], bool]:
        assert self.weigh is not None
        state, full = self.state, []
        for value in values:
            if not state.items:
                state.deadline = self.now() + self.max_wait
            state.items.append(value)
            self._weight += self.weigh(value)
            if self._weight >= self.max_size:
                full.append(state.items)
                state.items, self._weight = [], 0
        return full, StatefulBatchLogic.RETAIN if state.items else StatefulBatchLogic.DISCARD

    def on_notify(self) -> tuple[Iterable[list[V]], bool]:
        return self._flush()

    def on_eof(self) -> tuple[Iterable[list[V]], bool]:
        return self._flush()

    def notify_at(self) -> datetime | None:
        return self.state.deadline

    def snapshot(self) -> MicroBatchState[V]:
        return MicroBatchState(list(self.state.items), self.state.deadline)

    def _flush(self) -> tuple[Iterable[list[V]], bool]:
        items, self.state.items = self.state.items, []
        self._weight = 0
        return ([items] if items else []), StatefulBatchLogic.DISCARD


# A recovery snapshot (pickle) names each class by its module and name: the batching step's state
# keeps the name it had in its own module (`dataflows.batching` re-exports it), so that snapshots
# name the same class before and after the move, and each release reads the other's.
MicroBatchState.__module__ = "dataflows.batching"
