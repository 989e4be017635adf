"""The Headwater side of `bench.parity`: the stream through the real broker to a daemon in a process
of its own, labels ``delay`` events late on their own topic, and what it served and learned read back.

The served side's configuration is `served_config` (``--gate``): the learner under test as the first,
untrained champion and one fork candidate that never skips a batch.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.broker import (
    ADMIN,
    BenchError,
    Deadline,
    HeadwaterTopics,
    check_settings,
    create_topics,
    kafka_section,
    read_records,
    read_topic,
    topic_size,
)
from bench.report import LOG_FORMAT
from bench.streams import BUILT_IN, LEARNER_SPECS, Stream
from daemon.config import load_settings
from daemon.kafka_client import make_producer, produce_all
from daemon.runner import run_daemon
from learners import LearnerSpec

PERMISSIVE_GATE: dict[str, Any] = {
    "alpha": 0.5,  # the largest the settings allow
    "min_samples": 10,  # the smallest
    "max_samples": 500,
    "retry_after": 0,
    "canary_steps": [1.0],
    "canary_min_samples": 1,
    "probation_samples": 10,
    "max_lag_batches": 1_000_000,  # the fork learns every batch: no skipping
    "max_lag_s": 3600.0,
}
RUNTIME: dict[str, Any] = {"lanes": "thread", "workers": 1, "tail": True}


@dataclass(frozen=True)
class Params:
    bootstrap: str
    events: int
    rate: float
    delay: int
    window: int
    warmup: int
    learners: tuple[str, ...]
    streams: tuple[str, ...]
    partitions: int
    seed: int
    timeout_s: float
    keep_topics: bool
    out_dir: Path
    gate: str = "refresh"
    max_wait_ms: float = 5.0
    lanes: str = "thread"  # runtime.lanes of the served side with --gate refresh, live or vote
    refresh_samples: int = 100
    live_wait_ms: float | None = None  # promotion.live_refresh_wait_ms with --gate live (None: the default)
    restart_on_drift: bool = False  # promotion.restart_on_drift on the served side
    quick: bool = field(default=False)
    stem: str = "parity"
    quarantine: bool = True  # labels.quarantine of the served side
    candidates: tuple[dict[str, Any], ...] = ()  # --gate bandit: the candidates, as settings (`bench.bandit_kafka`)


def member_slot(learner: str) -> str:
    """A candidate's name for a learner of `bench.streams.LEARNER_SPECS` (``bench.parity:perceptron``: perceptron)."""
    return re.sub(r"[^a-z0-9_-]", "-", learner.rsplit(":", 1)[-1].lower())[:63]


def served_config(p: Params) -> dict[str, Any]:
    """The served side's ``model.candidates``, ``promotion``, ``runtime`` and ``vote`` (``--gate``).
    ``vote``: the first learner is the champion and its fork, every other one a candidate, and they
    serve as the portfolio's vote (`bench.quality`); with the built-in three (river-logreg first) that
    is the default portfolio, run as shipped: no candidates named, the vote and lanes ``auto``."""
    if p.gate == "bandit":  # the candidates as given, served by the bandit (`bench.bandit_kafka`)
        vote = {"enabled": True, "policy": "bandit"}
        return {"candidates": list(p.candidates), "promotion": {}, "runtime": RUNTIME | {"lanes": p.lanes},
                "vote": vote}  # fmt: skip
    if p.gate == "vote" and tuple(p.learners) == BUILT_IN:  # the default portfolio: the daemon's defaults
        return {"candidates": None, "promotion": {}, "runtime": RUNTIME | {"lanes": p.lanes}}
    if p.gate == "vote":
        others = [{"name": member_slot(m), "learner": LEARNER_SPECS[m].name, "params": dict(LEARNER_SPECS[m].params),
                   "seed": LEARNER_SPECS[m].seed} for m in p.learners[1:]]  # fmt: skip
        promotion = {"max_lag_batches": 1_000_000, "max_lag_s": 3600.0}  # every member learns every batch
        return {"candidates": [{"name": "fork"}, *others], "promotion": promotion,
                "runtime": RUNTIME | {"lanes": p.lanes}, "vote": {"enabled": True}}  # fmt: skip
    if p.gate == "default":  # the daemon's own defaults: a fork in shadow, its gate as shipped
        return {"candidates": [{"name": "fork"}], "promotion": {}, "runtime": RUNTIME}
    if p.gate == "shadow":
        return {"candidates": [{"name": "fork"}], "promotion": PERMISSIVE_GATE, "runtime": RUNTIME}
    promotion = {"refresh_samples": p.refresh_samples, "max_lag_batches": 1_000_000, "max_lag_s": 3600.0}
    if p.gate == "live":
        promotion["live_refresh"] = True
        if p.live_wait_ms is not None:
            promotion["live_refresh_wait_ms"] = p.live_wait_ms
    if p.restart_on_drift:
        promotion["restart_on_drift"] = True
    runtime = RUNTIME | {"lanes": p.lanes}
    return {"candidates": [{"name": "fork", "gate": "refresh"}], "promotion": promotion, "runtime": runtime}


def settings_sections(
    p: Params, spec: LearnerSpec, s: Stream, topics: HeadwaterTopics, registry: Path
) -> dict[str, dict[str, Any]]:
    """The daemon's settings as plain sections (they travel to the daemon's process)."""
    served = served_config(p)
    return dict(
        kafka=kafka_section(p, topics),
        admin=ADMIN,
        schema={"features": s.features, "classes": [0, 1]},
        model={
            "learner": spec.name,
            "params": dict(spec.params),
            "seed": spec.seed,
            **({} if served["candidates"] is None else {"candidates": served["candidates"]}),
            **({"vote": served["vote"]} if "vote" in served else {}),
        },
        promotion=served["promotion"],
        runtime=served["runtime"],
        batching={"max_wait_ms": p.max_wait_ms},
        labels={"quarantine": {"enabled": p.quarantine}},
        registry={"path": str(registry)},
    )


def serve(sections: dict[str, dict[str, Any]], stop: Any, ready: Any, level: int) -> None:
    """The daemon's process: run until ``stop`` is set; ``ready`` is set once the flow is built and
    about to run (its start-up, the lane server's included, is over); both `multiprocessing.Event`s.
    Headwater's log at ``level``."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)

    class Running(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("headwater running"):
                ready.set()

    headwater_log = logging.getLogger("headwater")
    headwater_log.setLevel(min(level, logging.INFO))
    headwater_log.addHandler(Running())
    if sections["model"]["learner"] == "torch-mlp":
        import torch

        torch.set_num_threads(1)
    stopped = threading.Event()

    def bridge() -> None:
        stop.wait()
        stopped.set()

    threading.Thread(target=bridge, daemon=True).start()
    run_daemon(load_settings(None, **sections), stopped, create_topics=False)


def messages(p: Params, s: Stream, topics: HeadwaterTopics) -> Iterator[tuple[str, bytes, bytes]]:
    """Event i, then the label of event i - delay; the last ``delay`` labels after the last event."""
    n = len(s.y)
    for i in range(n + p.delay):
        if i < n:
            key = f"e{i:07d}".encode()
            yield topics.events, key, orjson.dumps({"id": key.decode(), "features": s.x[i].tolist()})
        j = i - p.delay
        if j >= 0:
            key = f"e{j:07d}".encode()
            yield topics.labels, key, orjson.dumps({"id": key.decode(), "label": int(s.y[j])})


def feed_daemon(p: Params, spec: LearnerSpec, s: Stream, topics: HeadwaterTopics) -> float:
    """Start a daemon serving ``spec`` in a process of its own, send it the stream once it is up, wait
    until it served every event and its lanes reported every labelled example, stop it; the seconds
    the sending took."""
    n = len(s.y)
    with tempfile.TemporaryDirectory(prefix="headwater-bench-registry-") as registry:
        sections = settings_sections(p, spec, s, topics, Path(registry))
        check_settings(load_settings(None, **sections), topics)
        # The daemon runs in a process of its own, as it would in production: this process's
        # producer and reader do not share its interpreter lock (they took a fifth of it).
        context = multiprocessing.get_context("spawn")
        stop, ready = context.Event(), context.Event()
        level = logging.getLogger("headwater").getEffectiveLevel()
        daemon = context.Process(target=serve, args=(sections, stop, ready, level), name="bench-headwater")
        daemon.start()
        deadline = Deadline(p.timeout_s + n / p.rate, f"{spec.name} on {s.name}")
        try:
            while not ready.wait(0.1):  # its imports, learners, lane server and flow
                if not daemon.is_alive():
                    msg = f"the daemon exited during start-up (exit code {daemon.exitcode})"
                    raise BenchError(msg)
                deadline.check()
            time.sleep(2.0)  # Bytewax's start and the partitions' assignment, before the first event
            producer = make_producer(p.bootstrap, **{"linger.ms": 1})
            t0 = time.perf_counter()
            produce_all(producer, messages(p, s, topics), rate=2 * p.rate)
            send_s = time.perf_counter() - t0
            while topic_size(p.bootstrap, topics.predictions, p.partitions) < n:
                if not daemon.is_alive():
                    msg = f"the daemon stopped before serving every event (exit code {daemon.exitcode})"
                    raise BenchError(msg)
                deadline.check()
                time.sleep(0.5)
            # then until the lanes reported every labelled example (the model-events topic stops growing)
            last, still = -1, 0
            while still < 3:
                size = topic_size(p.bootstrap, topics.model_events, p.partitions)
                still = still + 1 if size == last else 0
                last = size
                deadline.check()
                time.sleep(0.5)
        finally:
            stop.set()
            daemon.join(p.timeout_s)
            if daemon.is_alive():
                daemon.kill()
        if daemon.exitcode != 0:
            msg = f"the daemon exited with code {daemon.exitcode}"
            raise BenchError(msg)
    return send_s


def lane_summaries(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per lane (model), from its ``report`` records: labelled examples scored and how many right,
    learned, skipped batches, the largest backlog, and labelled examples per job."""
    lanes: dict[str, dict[str, Any]] = {}
    lags: dict[str, list[int]] = {}
    for r in (e for e in events if e.get("type") == "report"):
        lags.setdefault(str(r["model"]), []).append(int(r.get("lag_batches", 0)))
        lane = lanes.setdefault(
            str(r["model"]),
            {"labelled": 0, "correct": 0, "learned": 0, "skipped": 0, "lag_max": 0, "batches": 0, "batch_max": 0},
        )
        lane["labelled"] += int(r.get("n_labelled", 0))
        lane["batches"] += int(r.get("n_labelled", 0)) > 0  # labelled examples per job: scored together
        lane["batch_max"] = max(lane["batch_max"], int(r.get("n_labelled", 0)))
        lane["correct"] += int(r.get("n_correct", 0))
        lane["learned"] += int(r.get("n_learned", 0))
        lane["skipped"] = max(lane["skipped"], int(r.get("skipped_batches_total", 0)))
        lane["lag_max"] = max(lane["lag_max"], int(r.get("lag_batches", 0)))
    for name, lane in lanes.items():
        later = lags[name][len(lags[name]) // 2 :]  # past start-up: the lag a lane keeps
        lane["lag_later_mean"] = round(sum(later) / len(later), 1) if later else None
        lane["lag_first"] = lags[name][:40]  # how start-up went
        lane["accuracy"] = lane["correct"] / lane["labelled"] if lane["labelled"] else None
        lane["batch_mean"] = round(lane["labelled"] / lane["batches"], 1) if lane["batches"] else None
    return lanes


def headwater(p: Params, spec: LearnerSpec, s: Stream) -> dict[str, Any]:
    """The stream through a daemon serving ``spec``; per-event correctness of what it served, and its lanes."""
    topics = HeadwaterTopics.fresh("parity")
    create_topics(p, topics.all(), topics.daemon_made)
    n = len(s.y)
    send_s = feed_daemon(p, spec, s, topics)
    read = Deadline(p.timeout_s, "reading back")
    preds = read_topic(p.bootstrap, topics.predictions, p.partitions, n, read)
    events = read_records(p, topics.model_events, read)
    quarantine = read_records(p, topics.quarantine, read) if p.quarantine else []
    served: dict[int, tuple[int, str]] = {}
    answered: dict[int, int] = {}  # event -> how many members answered for its vote
    predicted_ms: list[int] = []  # when each prediction was made
    duplicates = 0
    routes: Counter[str] = Counter()
    voters: Counter[int] = Counter()  # how many members answered for each prediction of a vote
    for m in preds:
        body = orjson.loads(m.value() or b"{}")
        i = int(str(body["id"])[1:])
        if i in served:
            duplicates += 1
            continue
        served[i] = (int(body["prediction"]), str(body["version"]))
        routes[str(body["route"])] += 1
        predicted_ms.append(int(body.get("predicted_ts_ms", 0)))
        if body.get("votes"):
            voters[len(body["votes"])] += 1
            answered[i] = len(body["votes"])
    correct = np.zeros(n, dtype=bool)
    truth = s.truth if s.truth is not None else s.y
    right = np.zeros(n, dtype=bool)  # against the labels before any was flipped
    for i, (pred, _) in served.items():
        correct[i] = pred == s.y[i]
        right[i] = pred == truth[i]
    versions = Counter(v for _, v in served.values())
    first_served: dict[str, int] = {}
    for i in sorted(served):
        first_served.setdefault(served[i][1], i)
    predicted_ms.sort()
    marks = [  # the vote's decisions along the stream: promotions, rollbacks, a new leader of the weights
        {"action": e["action"], "at_event": int(np.searchsorted(predicted_ms, int(e.get("ts_ms", 0))))}
        for e in events if e.get("type") == "decision" and e.get("action") in ("promote", "rollback", "lead")
    ]  # fmt: skip
    promotions = [  # the promote decisions: which slot won (the bandit gate's evidence names it), and when:
        # the predictions made before it, and the first event its version served (by any route)
        {"version": e["version"], "reason": e.get("reason", ""), "winner": (e.get("evidence") or {}).get("winner"),
         "at_event": int(np.searchsorted(predicted_ms, int(e.get("ts_ms", 0)))),
         "first_served": first_served.get(str(e["version"]))}
        for e in events if e.get("type") == "decision" and e.get("action") == "promote"
    ]  # fmt: skip
    return {
        "first_served": first_served,  # version -> the first event it predicted
        "correct": correct,
        "right": right,
        "quarantine": [_quarantined(r, topics.events) for r in quarantine],
        "served": len(served),
        "offered": n,
        "duplicates": duplicates,
        "dead_letters": topic_size(p.bootstrap, topics.dead_letters, p.partitions),
        "send_s": round(send_s, 2),
        "achieved_rate": round(n / send_s, 1),
        "lanes": lane_summaries(events),
        "versions_served": len(versions),
        "routes": dict(routes),  # champion, or live: a refresh fork's copy (--gate live)
        "voters": {str(k): v for k, v in sorted(voters.items())},  # vote predictions by members that answered
        "voters_accuracy": {
            str(k): round(float(np.mean([correct[i] for i, a in answered.items() if a == k])), 4) for k in voters
        },
        "decisions": dict(Counter(str(e.get("action")) for e in events if e.get("type") == "decision")),
        "promotions": promotions,
        "marks": marks,
        "vote_choices": dict(Counter(str(e.get("choice")) for e in events if e.get("type") == "vote")),
        "drift_verdicts": sum(1 for e in events if e.get("type") == "verdict" and e.get("evaluator") == "drift"),
    }


def _quarantined(record: dict[str, Any], events_topic: str) -> dict[str, Any]:
    """A quarantine record, with the newest event of its batch (one partition: its index)."""
    newest = [last for topic, _, _, last in record.get("offsets", []) if topic == events_topic]
    return {"action": record["action"], "examples": record["examples"], "reason": record["reason"],
            "newest_event": max(newest) if newest else None}  # fmt: skip
