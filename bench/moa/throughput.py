"""Part 2 of `bench.moa`: ``moa-arf`` (10 members) as the champion of a daemon with Headwater's
default model configuration at ``--rate`` events/s, every event labelled inline, against CapyMOA alone
and the bridge alone on the same events afterwards: what the fork learns per second, behind Headwater.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench.alone import batched, capymoa_api, capymoa_classifier, moa_learner
from bench.broker import ADMIN, Deadline, HeadwaterTopics, Payload, kafka_section, read_records, topic_size
from bench.daemon_run import decisions, measure_daemon, micro_batches, models, settings_record
from bench.latency import prediction_ts, summarize_latency
from bench.moa import BRIDGE_BATCH, WARM_EVENTS, Params
from bench.moa.calls import one_way
from bench.report import ratio
from bench.streams import LEARNER_SPECS, Stream
from daemon.config import Settings, load_settings
from learners import LearnerSpec

log = logging.getLogger("bench.moa")

SKIPPED = re.compile(r"skipped batch \d+ \((\d+) examples\)")


def payloads(s: Stream) -> list[Payload]:
    """Every event with its label inline."""
    return [
        (key.encode(), orjson.dumps({"id": key, "features": row, "label": int(label)}))
        for key, row, label in zip((f"m{i:07d}" for i in range(len(s.y))), s.x.tolist(), s.y, strict=True)
    ]


def settings_for(p: Params, s: Stream, topics: HeadwaterTopics, registry: Path) -> Settings:
    """Headwater's defaults (one fork candidate, the shadow gate, lanes auto, 1 worker, default
    micro-batches) with ``moa-arf`` (10 members) as the learner."""
    spec = LEARNER_SPECS["moa-arf"]
    return load_settings(
        None,
        kafka=kafka_section(p, topics),
        admin=ADMIN,
        schema={"features": s.features, "classes": [0, 1]},
        model={
            "learner": spec.name,
            "params": dict(spec.params),
            "seed": p.model_seed,
            "candidates": [{"name": "fork"}],
        },  # the champion and its fork, as measured before the portfolio
        runtime={"tail": True},
        registry={"path": str(registry)},
    )


def fork_learning(events: list[dict[str, Any]], first_ms: int, last_ms: int) -> dict[str, Any]:
    """The fork's learning, from its reports: overall, and while the measured events were sent."""
    reports = sorted(
        (e for e in events if e.get("type") == "report" and e.get("model") == "fork"), key=lambda r: r["ts_ms"]
    )
    window = [r for r in reports if first_ms <= int(r["ts_ms"]) <= last_ms]
    span_s = max(last_ms - first_ms, 1) / 1000

    def skipped(rs: list[dict[str, Any]]) -> int:
        return sum(int(m.group(1)) for r in rs if (m := SKIPPED.search(str(r.get("error") or ""))))

    learned = sum(int(r.get("n_learned", 0)) for r in reports)
    learned_window = sum(int(r.get("n_learned", 0)) for r in window)
    learn_s = sum(float(r.get("learn_ms", 0.0)) for r in reports) / 1000
    per_second = Counter[int]()
    for r in reports:
        per_second[(int(r["ts_ms"]) - first_ms) // 1000] += int(r.get("n_learned", 0))
    return {
        "learned": learned,
        "skipped_examples": skipped(reports),
        "skipped_batches": max((int(r.get("skipped_batches_total", 0)) for r in reports), default=0),
        "window_s": round(span_s, 2),
        "learned_in_window": learned_window,
        "skipped_examples_in_window": skipped(window),
        "learned_per_s": round(learned_window / span_s, 1),
        "learn_only_per_s": round(learned / learn_s, 1) if learn_s else None,  # examples / time inside learn()
        "lag_batches_max": max((int(r.get("lag_batches", 0)) for r in reports), default=0),
        "lag_batches_in_window_median": statistics.median([int(r.get("lag_batches", 0)) for r in window])
        if window
        else None,
        "learned_per_second_timeline": [{"s": k, "learned": v} for k, v in sorted(per_second.items())],
    }


def headwater(p: Params, s: Stream) -> dict[str, Any]:
    """The measured events at ``p.rate`` through a daemon whose champion is ``moa-arf``."""
    events = payloads(s)
    log.info("throughput: %d events at %.0f/s through Headwater (moa-arf champion)", len(events), p.rate)
    daemon = measure_daemon(p, "moa", "moa-arf", events, lambda topics, registry: settings_for(p, s, topics, registry))
    topics, settings, run, outputs = daemon.topics, daemon.settings, daemon.run, daemon.outputs
    first_ms = min(ts for _, ts in outputs) if outputs else 0
    last_ms = max(ts for _, ts in outputs) if outputs else 0
    # Exactly one prediction per event: every prediction on the topic, not only what the reader saw.
    counts = Counter(str(body.get("id")) for body in read_records(p, topics.predictions, Deadline(p.timeout_s, "read")))
    wanted = run.wanted
    served = sum(1 for i in wanted if counts[i] >= 1)
    duplicates = sum(counts[i] - 1 for i in wanted if counts[i] > 1)
    return {
        "offered": len(events),
        "served": served,
        "duplicates": duplicates,
        "every_event_exactly_once": served == len(events) and duplicates == 0,
        "dead_letters": topic_size(p.bootstrap, topics.dead_letters, p.partitions),
        "warmup_events": run.warmup_events,
        # the whole machine (broker, producer, reader included), warm-up to stop, in CPUs
        "machine_cpus_busy": daemon.machine_cpus_busy(os.cpu_count() or 1),
        "latency": summarize_latency(run, prediction_ts),
        "micro_batches": micro_batches(outputs),
        "fork": fork_learning(daemon.model_events, first_ms, last_ms),
        "models": models(daemon.model_events, daemon.last_output_ms),
        "decisions": decisions(daemon.model_events),
        "settings": settings_record(settings, "model", "promotion", "batching", "runtime")
        | {"candidates_in_processes": settings.runtime.lane_processes(len(settings.model.candidates))},
    }


def capymoa_alone_rate(p: Params, s: Stream) -> dict[str, Any]:
    """CapyMOA's ARF (10 members) on the measured events, one instance per event; events/s per 10,000."""
    model = capymoa_classifier(LearnerSpec("moa-arf", {"ensemble_size": 10}, p.model_seed), s.features, 2)
    n, step = len(s.y), 10_000
    curve, predict_s, train_s = [], 0.0, 0.0
    for at in range(0, n, step):
        t0 = time.perf_counter()
        halves = capymoa_api(model, s.x[at : at + step], s.y[at : at + step])
        curve.append(round(min(step, n - at) / (time.perf_counter() - t0), 1))
        predict_s, train_s = predict_s + halves[0], train_s + halves[1]
    return {"events": n, "seconds": round(predict_s + train_s, 2), "events_per_s": round(n / (predict_s + train_s), 1),
            "predict_s": round(predict_s, 2), "train_s": round(train_s, 2),
            "train_only_per_s": round(n / train_s, 1), "events_per_s_per_10k": curve}  # fmt: skip


def bridge_alone_rate(p: Params, s: Stream) -> dict[str, Any]:
    """Headwater's learner (the bridge) on the measured events, predict + learn in batches, no daemon."""
    learner = moa_learner(LearnerSpec("moa-arf", {"ensemble_size": 10}, p.model_seed), s)
    t0 = time.perf_counter()
    batched(learner, s.x, s.y, BRIDGE_BATCH)
    seconds = time.perf_counter() - t0
    return {"events": len(s.y), "batch": BRIDGE_BATCH, "seconds": round(seconds, 2),
            "events_per_s": round(len(s.y) / seconds, 1)}  # fmt: skip


def throughput(p: Params, s: Stream, warm: Stream) -> dict[str, Any]:
    log.info("throughput: JIT warm-up")
    spec = LEARNER_SPECS["moa-arf"]
    for way in ("batched bridge", "CapyMOA API"):
        one_way(way, spec, warm, warm.x[:WARM_EVENTS], warm.y[:WARM_EVENTS], BRIDGE_BATCH)
    hw = headwater(p, s)
    log.info("throughput: CapyMOA alone on %d events", len(s.y))
    capy = capymoa_alone_rate(p, s)
    log.info("throughput: the bridge alone on %d events", len(s.y))
    bridge = bridge_alone_rate(p, s)
    fork = hw["fork"]
    return {
        "events": len(s.y),
        "rate": p.rate,
        "headwater": hw,
        "capymoa_alone": capy,
        "bridge_alone": bridge,
        "fork_learned_over_capymoa_alone": ratio(fork["learned_per_s"], capy["events_per_s"]),
        "fork_learned_over_bridge_alone": ratio(fork["learned_per_s"], bridge["events_per_s"]),
    }
