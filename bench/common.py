"""The names `bench.candidates`, `bench.moa` and `bench.parity` still import from here while they move
to the modules that hold them now: `bench.broker` (Kafka, topics, events), `bench.latency` (the
fixed-rate latency method) and `bench.report` (machine, formats, tables, files)."""

from __future__ import annotations

from bench.broker import (
    CREATED,
    BenchError,
    Deadline,
    Headers,
    HeadwaterTopics,
    KafkaKnobs,
    Payload,
    Received,
    check_settings,
    cpu_seconds,
    create_topics,
    delete_topics,
    make_events,
    new_consumer,
    partitions_of,
    read_topic,
    topic_size,
    warmup_events,
)
from bench.latency import (
    LatencyKnobs,
    LatencyRun,
    Reader,
    Runner,
    measure_latency,
    measured_outputs,
    percentiles,
    summarize_latency,
)
from bench.report import REPO, dist_version, machine_info, ratio, render_markdown_table, render_text

__all__ = [
    "CREATED",
    "REPO",
    "BenchError",
    "Deadline",
    "Headers",
    "HeadwaterTopics",
    "KafkaKnobs",
    "LatencyKnobs",
    "LatencyRun",
    "Payload",
    "Reader",
    "Received",
    "Runner",
    "check_settings",
    "cpu_seconds",
    "create_topics",
    "delete_topics",
    "dist_version",
    "machine_info",
    "make_events",
    "measure_latency",
    "measured_outputs",
    "new_consumer",
    "partitions_of",
    "percentiles",
    "ratio",
    "read_topic",
    "render_markdown_table",
    "render_text",
    "summarize_latency",
    "topic_size",
    "warmup_events",
]
