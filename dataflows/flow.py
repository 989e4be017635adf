"""The whole pipeline in one function: Kafka in → decode → dead letters → micro-batch → predict →
Kafka out → learn → evaluate.

Each step id names the module that holds its code, as ``module__step`` (Bytewax forbids dots).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeGuard

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from confluent_kafka import OFFSET_BEGINNING

from dataflows.batching import MicroBatchLogic, MicroBatchState
from dataflows.decode import Decoder, FeatureSchema
from dataflows.group import STATE_FORMAT, GroupLogic, GroupState, ModelSlot, Output
from dataflows.kafka_io import ReliableKafkaSink, StoppableKafkaSource
from dataflows.labels import LabelJoin
from dataflows.records import DeadLetter, Event, KafkaOut, Label, ModelEvent, Prediction, to_kafka
from evaluators import PrequentialScore
from learners import LearnerSpec, build_learner

__all__ = ["FlowConfig", "Topics", "build_flow", "new_group_state", "resume_group_state"]

Record = Event | Label


@dataclass(frozen=True)
class Topics:
    events: str
    predictions: str
    dead_letters: str
    model_events: str
    labels: str | None = None

    def inputs(self) -> list[str]:
        return [self.events] + ([self.labels] if self.labels else [])

    def all(self) -> list[str]:
        return [*self.inputs(), self.predictions, self.dead_letters, self.model_events]


@dataclass(frozen=True)
class FlowConfig:
    """What the flow needs, already validated (the daemon builds it from its settings)."""

    brokers: str
    topics: Topics
    schema: FeatureSchema
    learner: LearnerSpec
    group: str = "default"
    batch_max_size: int = 512
    batch_max_wait: timedelta = timedelta(milliseconds=20)
    label_window_s: float = 300.0
    max_pending: int = 100_000
    rolling_window: int = 1000
    tail: bool = True
    drain_on_eof: bool = True
    consumer_config: Mapping[str, Any] = field(default_factory=dict)
    producer_config: Mapping[str, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], float] = time.time


def new_group_state(config: FlowConfig) -> GroupState:
    """A group with its first model, untrained: the champion until the registry says otherwise."""
    schema = config.schema
    learner = build_learner(
        config.learner, n_features=len(schema.features), n_classes=len(schema.classes),
        feature_names=schema.features,
    )  # fmt: skip
    champion = ModelSlot("m1", learner, PrequentialScore(config.rolling_window))
    return GroupState(
        name=config.group,
        champion=champion.name,
        models={champion.name: champion},
        join=LabelJoin(config.label_window_s, config.max_pending),
        features=list(schema.features),
        classes=list(schema.classes),
    )


def resume_group_state(resumed: GroupState | None, config: FlowConfig) -> GroupState:
    """The recovered state if it fits ``config``, a new group if there is none; else a clear error.

    The daemon checks the recovery store's manifest before it starts; this guards the flow itself.
    """
    if resumed is None:
        return new_group_state(config)
    # Unpickling skips __init__, so an older snapshot lacks the field in its __dict__ (getattr
    # would find the class-level default instead and wave it through).
    found = vars(resumed).get("format")
    if found != STATE_FORMAT:
        msg = f"group {resumed.name!r}: snapshot format {found}, this Headwater reads format {STATE_FORMAT}"
        raise ValueError(msg)
    wanted = (resumed.name, list(config.schema.features), list(config.schema.classes))
    if (config.group, resumed.features, resumed.classes) != wanted:
        msg = (
            f"group {resumed.name!r}: the snapshot was made for features {resumed.features} and classes "
            f"{resumed.classes}, the config says group {config.group!r}, features "
            f"{list(config.schema.features)} and classes {list(config.schema.classes)}"
        )
        raise ValueError(msg)
    return resumed


def build_flow(config: FlowConfig) -> Dataflow:
    topics = config.topics
    flow = Dataflow("headwater")

    source = StoppableKafkaSource(
        [config.brokers], topics.inputs(), tail=config.tail, starting_offset=OFFSET_BEGINNING,
        add_config=dict(config.consumer_config), batch_size=config.batch_max_size, stop=config.stop,
    )  # fmt: skip
    raw = op.input("kafka_io__in", flow, source)

    decoder = Decoder(config.schema, topics.events, topics.labels)
    decoded = op.map("decode", raw, decoder)  # type: ignore[arg-type]  # KafkaSourceMessage fits RawMessage
    records = op.branch("decode__route", decoded, _is_record)
    bad: Stream[Any] = records.falses

    keyed = op.key_on("group__key", records.trues, lambda _: config.group)

    def batcher(resumed: MicroBatchState[Record] | None) -> MicroBatchLogic[Record]:
        return MicroBatchLogic(resumed, max_size=config.batch_max_size, max_wait=config.batch_max_wait)

    batches = op.stateful_batch("batching__micro_batch", keyed, batcher)

    def group(resumed: GroupState | None) -> GroupLogic:
        state = resume_group_state(resumed, config)
        return GroupLogic(
            state, drain_on_eof=config.drain_on_eof, delayed_labels=topics.labels is not None, clock=config.clock
        )

    results = op.stateful("group__test_then_train", batches, group)
    outputs: Stream[Output] = op.merge("records__outputs", op.key_rm("group__unkey", results), bad)

    def encode(record: Output) -> KafkaOut:
        topic = _topic_for(record, topics)
        return to_kafka(record, topic, int(config.clock() * 1000))

    messages = op.map("records__encode", outputs, encode)
    sink = ReliableKafkaSink(config.brokers, config.producer_config)
    op.output("kafka_io__out", messages, sink)
    return flow


def _is_record(item: Record | DeadLetter) -> TypeGuard[Record]:
    return not isinstance(item, DeadLetter)


def _topic_for(record: Output, topics: Topics) -> str:
    if isinstance(record, Prediction):
        return topics.predictions
    if isinstance(record, ModelEvent):
        return topics.model_events
    return topics.dead_letters
