"""Compose the flow's collaborators: the Kafka edges, the registry, the board and the promoter."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from bytewax.inputs import Source
from bytewax.outputs import Sink
from confluent_kafka import OFFSET_BEGINNING

from daemon.metrics import ServingWatch
from daemon.promoter import BoardPromoter, TableLog
from daemon.registry import SqliteRegistry
from dataflows import FlowConfig, FlowDeps, ReliableKafkaSink, ServingBoard, StoppableKafkaSource
from dataflows.kafka_io import PartNames
from dataflows.ports import Clock, Metrics, NullMetrics
from dataflows.records import SinkItem

__all__ = ["kafka_sink", "kafka_source", "local_deps"]


def kafka_source(
    config: FlowConfig, stop: threading.Event | None = None, part_names: PartNames = "balanced",
    metrics: Metrics | None = None,
) -> StoppableKafkaSource:  # fmt: skip
    """The events and labels topics, from the beginning (or the recovery store's offsets);
    records read and each partition's lag go to ``metrics``."""
    return StoppableKafkaSource(
        [config.brokers], config.topics.inputs(), tail=config.tail, starting_offset=OFFSET_BEGINNING,
        add_config=dict(config.consumer_config), batch_size=config.batch_max_size,
        stop=stop if stop is not None else config.stop, part_names=part_names, metrics=metrics,
    )  # fmt: skip


def kafka_sink(config: FlowConfig, metrics: Metrics | None = None) -> ReliableKafkaSink:
    """The flow's sink; flush durations and refused messages go to ``metrics``."""
    return ReliableKafkaSink(config.brokers, config.producer_config, metrics=metrics)


def local_deps(
    source: Source[Any],
    sink: Sink[SinkItem],
    registry_dir: Path,
    *,
    seed: int = 0,
    metrics: Metrics | None = None,
    clock: Clock = time.time,
    tables: TableLog | None = None,
) -> FlowDeps:
    """Collaborators for one process: an embedded registry in ``registry_dir``, this process's
    serving board, and the promoter that acts on both (and writes each serving table to
    ``tables``, the serving-table topic, if given). ``metrics`` also learns who serves from the
    board (`ServingWatch`)."""
    registry = SqliteRegistry(registry_dir)
    metrics = metrics if metrics is not None else NullMetrics()
    board = ServingBoard(on_change=ServingWatch(metrics, registry, clock))
    return FlowDeps(
        source=source, sink=sink, registry=registry, promoter=BoardPromoter(registry, board, seed=seed, tables=tables),
        board=board, metrics=metrics, clock=clock,
    )  # fmt: skip
