"""Bytewax wiring: the stages that move data between Kafka, learners and evaluators.

`build_flow` is the whole pipeline; it receives its settings in a `FlowConfig` and its
collaborators (source, sink, registry, promoter, serving board, metrics, clock) in `FlowDeps`.
"""

from dataflows.config import CandidateSpec, FlowConfig, GateSpec, GoldenSet, Topics
from dataflows.decode import Decoder, FeatureSchema, RawMessage
from dataflows.flow import FlowDeps, build_flow, install_champion
from dataflows.kafka_io import DeliveryError, ReliableKafkaSink, StoppableKafkaSource
from dataflows.labels import LabelJoin
from dataflows.records import (
    DeadLetter,
    DeadLetterReason,
    DecisionRecord,
    Event,
    KafkaOut,
    Label,
    ModelReport,
    Prediction,
    VerdictRecord,
)
from dataflows.serve import ServingBoard, ServingTable
from dataflows.train import GroupState, TrainLogic

__all__ = [
    "CandidateSpec",
    "DeadLetter",
    "DeadLetterReason",
    "DecisionRecord",
    "Decoder",
    "DeliveryError",
    "Event",
    "FeatureSchema",
    "FlowConfig",
    "FlowDeps",
    "GateSpec",
    "GoldenSet",
    "GroupState",
    "KafkaOut",
    "Label",
    "LabelJoin",
    "ModelReport",
    "Prediction",
    "RawMessage",
    "ReliableKafkaSink",
    "ServingBoard",
    "ServingTable",
    "StoppableKafkaSource",
    "Topics",
    "TrainLogic",
    "VerdictRecord",
    "build_flow",
    "install_champion",
]
