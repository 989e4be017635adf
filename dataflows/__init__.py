"""Bytewax wiring: the stages that move data between Kafka, learners and evaluators.

`build_flow` is the whole pipeline; it receives everything it needs in a `FlowConfig`.
"""

from dataflows.decode import Decoder, FeatureSchema, RawMessage
from dataflows.flow import FlowConfig, Topics, build_flow, new_group_state
from dataflows.group import GroupLogic, GroupState
from dataflows.kafka_io import DeliveryError, ReliableKafkaSink, StoppableKafkaSource
from dataflows.labels import LabelJoin
from dataflows.records import DeadLetter, DeadLetterReason, Event, KafkaOut, Label, ModelEvent, Prediction

__all__ = [
    "DeadLetter",
    "DeadLetterReason",
    "Decoder",
    "DeliveryError",
    "Event",
    "FeatureSchema",
    "FlowConfig",
    "GroupLogic",
    "GroupState",
    "KafkaOut",
    "Label",
    "LabelJoin",
    "ModelEvent",
    "Prediction",
    "RawMessage",
    "ReliableKafkaSink",
    "StoppableKafkaSource",
    "Topics",
    "build_flow",
    "new_group_state",
]
