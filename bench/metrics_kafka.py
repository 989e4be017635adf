"""The Kafka half of `bench.metrics_overhead`: the whole flow through the local broker, draining
the same pre-loaded events with `NullMetrics` and with `PrometheusMetrics` handed to every place
the daemon hands them (the flow, the Kafka source and sink, the serving board), in alternating
runs. Each run gets fresh output topics and a fresh registry; it must write exactly one prediction
per event. Measured: the run's wall time and the process's CPU time (all threads, librdkafka's
included), start-up included alike in both ways."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bytewax.testing import run_main
from prometheus_client import CollectorRegistry

from bench.broker import (
    CREATED,
    BenchError,
    HeadwaterTopics,
    cpu_seconds,
    create_topics,
    kafka_section,
    make_events,
    topic_size,
)
from daemon.config import load_settings
from daemon.kafka_client import make_producer, produce_all
from daemon.metrics import PrometheusMetrics
from daemon.topics import delete_topics
from daemon.wiring import kafka_sink, kafka_source, local_deps
from daemon.workload import FEATURES
from dataflows import build_flow, install_champion
from dataflows.ports import Metrics, NullMetrics

__all__ = ["Knobs", "measure_kafka"]


@dataclass(frozen=True)
class Knobs:
    bootstrap: str
    partitions: int


def _drain(k: Knobs, events_topic: str, n: int, metrics: Metrics) -> dict[str, float]:
    topics = HeadwaterTopics.fresh("metrics", events=events_topic)
    create_topics(k, [t for t in topics.all() if t != events_topic])
    registry_dir = Path(tempfile.mkdtemp(prefix="headwater-bench-registry-"))
    settings = load_settings(
        None, kafka=kafka_section(k, topics), schema={"features": list(FEATURES), "classes": [0, 1]},
        runtime={"tail": False, "workers": 1}, registry={"path": str(registry_dir)},
        model={"candidates": [{"name": "fork"}]},  # the champion and its fork, as measured before the portfolio
    )  # fmt: skip
    config = settings.flow_config(stop=threading.Event())
    deps = local_deps(kafka_source(config, metrics=metrics), kafka_sink(config, metrics=metrics), registry_dir,
                      metrics=metrics)  # fmt: skip
    try:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        run_main(build_flow(config, deps, installed=install_champion(config, deps)))
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    finally:
        deps.registry.close()
    written = topic_size(k.bootstrap, topics.predictions, k.partitions)
    if written != n:
        msg = f"{written} predictions for {n} events"
        raise BenchError(msg)
    return {"seconds": seconds, "cpu_s": cpu}


def measure_kafka(k: Knobs, n: int, rounds: int) -> dict[str, Any]:
    """``rounds`` runs of each way on ``n`` events, the order rotated each round: `NullMetrics`
    twice (``null``, ``null_again``: how far two runs of the same code differ here) and
    `PrometheusMetrics`."""
    events_topic = f"bench.metrics.events.{uuid.uuid4().hex[:10]}"
    create_topics(k, [events_topic])
    ways = ["null", "null_again", "prometheus"]
    runs: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
    try:
        produce_all(make_producer(k.bootstrap), ((events_topic, key, value) for key, value in make_events(n)))
        _drain(k, events_topic, n, NullMetrics())  # warm-up: imports, the broker's caches
        for r in range(rounds):
            for way in ways[r % 3 :] + ways[: r % 3]:
                metrics = PrometheusMetrics(CollectorRegistry()) if way == "prometheus" else NullMetrics()
                runs[way].append(_drain(k, events_topic, n, metrics))
    finally:
        delete_topics(k.bootstrap, CREATED)
        CREATED.clear()
    seconds = {way: statistics.median(r["seconds"] for r in rs) for way, rs in runs.items()}
    cpu = {way: statistics.median(r["cpu_s"] for r in rs) for way, rs in runs.items()}
    return {
        "events": n, "rounds": rounds, "partitions": k.partitions,
        "events_per_s": {way: round(n / s) for way, s in seconds.items()},
        "cpu_s": {way: round(c, 2) for way, c in cpu.items()},
        "wall_pct_vs_null": {way: round(100 * (s / seconds["null"] - 1), 2) for way, s in seconds.items()},
        "cpu_pct_vs_null": {way: round(100 * (c / cpu["null"] - 1), 2) for way, c in cpu.items()},
        "runs": {way: [{key: round(v, 3) for key, v in r.items()} for r in rs] for way, rs in runs.items()},
    }  # fmt: skip
