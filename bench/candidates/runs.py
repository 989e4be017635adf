"""The runs of `bench.candidates`: its parameters, the candidate sets, the daemon's settings for
each, and one run (`run_one`): the events at a fixed rate through a daemon with those candidates, its
latency, and what each model did, read back from the model-events topic.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.broker import ADMIN, HeadwaterTopics, Payload, kafka_section, topic_size
from bench.daemon_run import decisions, measure_daemon, micro_batches, models, settings_record, timeline
from bench.latency import prediction_ts, summarize_latency
from daemon.config import Settings, load_settings
from daemon.workload import FEATURES

log = logging.getLogger("bench.candidates")

CHAMPION = "river-logreg"
CANDIDATE_SETS: dict[str, list[dict[str, Any]]] = {
    "0 candidates": [],
    "2 candidates": [
        {"name": "fork"},
        {"name": "logreg-lr01", "learner": "river-logreg", "params": {"lr": 0.1}},
    ],
    "3 candidates": [  # the default configuration's fork and 2 more
        {"name": "fork"},
        {"name": "logreg-lr01", "learner": "river-logreg", "params": {"lr": 0.1}},
        {"name": "hoeffding", "learner": "river-hoeffding"},
    ],
    "4 candidates": [
        {"name": "fork"},
        {"name": "logreg-lr01", "learner": "river-logreg", "params": {"lr": 0.1}},
        {"name": "hoeffding", "learner": "river-hoeffding"},
        {"name": "mlp", "learner": "torch-mlp", "params": {"device": "cpu"}},
    ],
}
LONG_EPOCH_S = 3600.0  # runtime.snapshot_interval_s of the diagnostic run: no epoch ends while it runs
NO_PROMOTION = {"min_improvement": 0.99}  # no candidate gains 99 points of accuracy: the champion stays


@dataclass(frozen=True)
class Params:
    bootstrap: str
    rate: float
    duration_s: float
    rounds: int
    slow_events: int
    slow_rate: float
    slow_reference_s: float
    slow_trees: int
    slow_learner: str
    long_epoch_run: bool
    lanes: tuple[str, ...]
    workers: int
    partitions: int
    batch_max_size: int
    batch_max_wait_ms: float
    max_lag_batches: int | None
    promote: bool
    warmup_s: float
    timeout_s: float
    keep_topics: bool
    out_dir: Path
    stem: str


def slow_candidates(p: Params) -> list[dict[str, Any]]:
    if p.slow_learner == "moa-arf":
        return [{"name": "arf", "learner": "moa-arf", "params": {"ensemble_size": p.slow_trees}, "seed": 1}]
    return [{"name": "arf", "learner": "bench.candidates:arf", "params": {"n_models": p.slow_trees}, "seed": 1}]


def settings_for(
    p: Params, topics: HeadwaterTopics, candidates: list[dict[str, Any]], registry: Path, runtime: dict[str, Any]
) -> Settings:
    promotion: dict[str, Any] = {} if p.promote else dict(NO_PROMOTION)
    if p.max_lag_batches is not None:
        promotion["max_lag_batches"] = p.max_lag_batches
    return load_settings(
        None,
        kafka=kafka_section(p, topics),
        admin=ADMIN,
        schema={"features": list(FEATURES), "classes": [0, 1]},
        runtime={"tail": True, "workers": p.workers} | runtime,
        batching={"max_size": p.batch_max_size, "max_wait_ms": p.batch_max_wait_ms},
        model={"learner": CHAMPION, "candidates": candidates},
        promotion=promotion,
        registry={"path": str(registry)},
    )


def run_one(
    p: Params,
    label: str,
    candidates: list[dict[str, Any]],
    events: list[Payload],
    runtime: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``events`` at ``p.rate`` through a daemon with ``candidates``; latency, and what each model did."""

    def settings(topics: HeadwaterTopics, registry: Path) -> Settings:
        return settings_for(p, topics, candidates, registry, runtime or {})

    log.info("%s: %d events at %.0f/s", label, len(events), p.rate)
    daemon = measure_daemon(p, "cand", label, events, settings)
    run, outputs, last_output_ms = daemon.run, daemon.outputs, daemon.last_output_ms
    labelled = sum(is_labelled(v) for _, v in events) + sum(
        is_labelled(events[i % min(1000, len(events))][1]) for i in range(run.warmup_events)
    )
    return summarize_latency(run, prediction_ts) | {
        "candidates": candidates,
        "rate": p.rate,
        "served": len(outputs),
        "offered": run.events,
        "missing": run.missing,
        "dead_letters": topic_size(p.bootstrap, daemon.topics.dead_letters, p.partitions),
        "labelled_offered": labelled,
        "last_output_after_stop_requested_s": round((run.stop_requested_ms - last_output_ms) / 1000, 3),
        "routes": dict(Counter(orjson.loads(item[3] or b"{}").get("route") for item, _ in outputs)),
        "micro_batches": micro_batches(outputs),
        "timeline": timeline(outputs),
        "models": models(daemon.model_events, last_output_ms),
        "decisions": decisions(daemon.model_events),
        "settings": settings_record(daemon.settings, "model", "promotion", "runtime"),
    }


def is_labelled(value: bytes) -> bool:
    return orjson.loads(value).get("label") is not None
