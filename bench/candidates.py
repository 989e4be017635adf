"""Serving latency against the number of candidates, and a candidate too slow to keep up.

The daemon serves each micro-batch with a frozen snapshot of the champion, then hands the batch to
the train step, where every model learns on its own thread ("lane") with a bounded backlog. So the
event → prediction latency should not grow with the number of candidates, and a candidate that
cannot keep up should fall behind (skip its oldest batches) instead of holding back serving. This
measures both, in one run, through the real broker, with `bench.e2e_kafka`'s latency method
(`bench.common.measure_latency`):

1. the same events at ``--rate`` for ``--duration`` s (after a warm-up) with 0, 2 and 4 candidates
   behind a river-logreg champion (`CANDIDATE_SETS`), the candidates in thread lanes and in process
   lanes (``--lanes``); each run's p50/p99 as a ratio to the 0-candidate run of its round
   (``--rounds``, interleaved: 0, 2 and 4 in threads, 2 and 4 in processes, then again);
2. the slow case: an adaptive random forest candidate (``--slow-learner``: River's, `arf`, a user
   factory; or MOA's, ``moa-arf``, learning in a JVM outside the GIL), in each kind of lane, on
   ``--slow-events`` offered at ``--slow-rate``, against a 0-candidate run at the same rate:
   predictions served / events offered (must be all), latency, and the forest's lag and skipped
   batches; then the same again with no Bytewax epoch end inside the run (with
   ``--long-epoch-run``), which tells what the per-epoch snapshots of the models cost serving.

Each run gets fresh topics and a fresh registry; what each model did (labelled examples scored and
learned, lag, skipped batches) is read back from the model-events topic. By default no candidate
can be promoted (``promotion.min_improvement`` 0.99), so the same frozen champion serves in every
run and only the candidates differ; ``--promote`` keeps the stock gate.

Run from the repository root with the broker up (``python3 -m daemon.kafka_local up``)::

    .venv/bin/python -m bench.candidates          # writes bench/results/candidates.{json,md}
    .venv/bin/python -m bench.candidates --rounds 0 --slow-learner moa-arf --stem candidates-moa
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.common import (
    CREATED,
    BenchError,
    Deadline,
    HeadwaterTopics,
    Payload,
    Received,
    Runner,
    check_settings,
    create_topics,
    delete_topics,
    machine_info,
    make_events,
    measure_latency,
    measured_outputs,
    percentiles,
    ratio,
    read_topic,
    render_markdown_table,
    render_text,
    summarize_latency,
    topic_size,
)
from daemon.config import Settings, load_settings
from daemon.runner import run_daemon
from daemon.workload import FEATURES
from dataflows.process_lane import start_lane_server

log = logging.getLogger("bench.candidates")

RESULTS = Path(__file__).resolve().parent / "results"
CHAMPION = "river-logreg"
CANDIDATE_SETS: dict[str, list[dict[str, Any]]] = {
    "0 candidates": [],
    "2 candidates": [
        {"name": "fork"},
        {"name": "logreg-lr01", "learner": "river-logreg", "params": {"lr": 0.1}},
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


def arf(n_features: int, n_classes: int, feature_names: list[str], seed: int, **params: Any) -> Any:
    """River's adaptive random forest, the slow candidate: ``n_models`` trees (10 unless given)."""
    from river import forest

    return forest.ARFClassifier(seed=seed, **({"n_models": 10} | params))


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


def parse_args(argv: list[str] | None = None) -> Params:
    parser = argparse.ArgumentParser(
        prog="python -m bench.candidates",
        description="Headwater's serving latency with 0, 2, 4 candidates and with a slow one, through the broker.",
    )
    add = parser.add_argument
    add("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    add("--rate", type=float, default=2000.0, help="events/s sent in the 0/2/4-candidate runs")
    add("--duration", type=float, default=10.0, help="seconds of sending in the 0/2/4-candidate runs")
    add("--rounds", type=int, default=2, help="rounds of the 0/2/4-candidate runs, interleaved (0: skip them)")
    add("--slow-events", type=int, default=60_000, help="events offered in the slow-candidate run (0: skip it)")
    add("--slow-rate", type=float, default=1000.0, help="events/s in the slow-candidate run and its reference")
    add("--slow-reference", type=float, default=20.0, help="seconds of the 0-candidate run at --slow-rate")
    add("--slow-trees", type=int, default=10, help="trees (n_models) of the slow forest candidate")
    add(
        "--slow-learner",
        choices=["river-arf", "moa-arf"],
        default="river-arf",
        help="the slow forest: River's or MOA's",
    )
    add(
        "--long-epoch-run",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="repeat the slow case with no Bytewax epoch end (snapshot) inside the run",
    )
    add(
        "--lanes",
        default="thread,process",
        help="runtime.lanes to measure, comma-separated (thread, process): each candidate set runs with each",
    )
    add("--workers", type=int, default=1, help="Bytewax worker threads")
    add("--partitions", type=int, default=4, help="partitions of every fresh topic")
    add("--batch-size", type=int, default=512, help="micro-batch size")
    add("--max-wait-ms", type=float, default=5.0, help="micro-batch wait")
    add("--max-lag-batches", type=int, default=None, help="promotion.max_lag_batches (default: the daemon's)")
    add("--promote", action="store_true", help="stock promotion gate (default: no candidate can be promoted)")
    add("--warmup", type=float, default=1.0, help="seconds of warm-up sending before each measurement")
    add("--timeout", type=float, default=60.0, help="bound on every wait of a run, seconds")
    add("--keep-topics", action="store_true", help="do not delete the benchmark's topics")
    add("--out-dir", type=Path, default=RESULTS, help="where the JSON and Markdown go")
    add("--stem", default="candidates", help="file names of the results: <stem>.json and <stem>.md")
    a = parser.parse_args(argv)
    positive = (
        "rate",
        "duration",
        "slow_rate",
        "slow_reference",
        "slow_trees",
        "workers",
        "partitions",
        "batch_size",
    )
    for name in (*positive, "max_wait_ms", "timeout"):
        if getattr(a, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    lanes = tuple(x.strip() for x in a.lanes.split(",") if x.strip())
    if not lanes or set(lanes) - {"thread", "process"}:
        parser.error("--lanes takes thread, process or both, comma-separated")
    if a.slow_events < 0 or a.rounds < 0 or (a.max_lag_batches is not None and a.max_lag_batches < 1):
        parser.error("--slow-events and --rounds must be >= 0 and --max-lag-batches >= 1")
    return Params(
        bootstrap=a.bootstrap,
        rate=a.rate,
        duration_s=a.duration,
        rounds=a.rounds,
        slow_events=a.slow_events,
        slow_rate=a.slow_rate,
        slow_reference_s=a.slow_reference,
        slow_trees=a.slow_trees,
        slow_learner=a.slow_learner,
        long_epoch_run=a.long_epoch_run,
        lanes=lanes,
        workers=a.workers,
        partitions=a.partitions,
        batch_max_size=a.batch_size,
        batch_max_wait_ms=a.max_wait_ms,
        max_lag_batches=a.max_lag_batches,
        promote=a.promote,
        warmup_s=max(a.warmup, 0.0),
        timeout_s=a.timeout,
        keep_topics=a.keep_topics,
        out_dir=a.out_dir,
        stem=a.stem,
    )


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
        kafka={
            "bootstrap_servers": p.bootstrap,
            "events_topic": topics.events,
            "labels_topic": topics.labels,
            "predictions_topic": topics.predictions,
            "dead_letter_topic": topics.dead_letters,
            "model_events_topic": topics.model_events,
            "partitions": p.partitions,
        },
        schema={"features": list(FEATURES), "classes": [0, 1]},
        runtime={"tail": True, "workers": p.workers} | runtime,
        batching={"max_size": p.batch_max_size, "max_wait_ms": p.batch_max_wait_ms},
        model={"learner": CHAMPION, "candidates": candidates},
        promotion=promotion,
        registry={"path": str(registry)},
    )


# -- one run --------------------------------------------------------------------------------------


def prediction_ts(item: Received) -> tuple[str, int | None]:
    body = orjson.loads(item[3] or b"{}")
    return str(body.get("id")), body.get("event_ts_ms")


def run_one(
    p: Params,
    label: str,
    candidates: list[dict[str, Any]],
    events: list[Payload],
    runtime: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``events`` at ``p.rate`` through a daemon with ``candidates``; latency, and what each model did."""
    topics = HeadwaterTopics.fresh("cand")
    create_topics(p, topics.all())
    with tempfile.TemporaryDirectory(prefix="headwater-bench-registry-") as registry:
        settings = settings_for(p, topics, candidates, Path(registry), runtime or {})
        check_settings(settings, topics)

        def start(stop: threading.Event, deadline: Deadline) -> Runner:
            runner = Runner("bench-headwater", lambda: run_daemon(settings, stop, create_topics=False))
            runner.start()
            return runner

        log.info("%s: %d events at %.0f/s", label, len(events), p.rate)
        run = measure_latency(p, label, events, topics.events, topics.predictions, start, require_all=False)
    result = summarize_latency(run, prediction_ts)
    outputs, _ = measured_outputs(run, prediction_ts)
    last_output_ms = max((item[0] for item, _ in outputs), default=run.stop_requested_ms)
    labelled = sum(is_labelled(v) for _, v in events) + sum(
        is_labelled(events[i % min(1000, len(events))][1]) for i in range(run.warmup_events)
    )
    n_model_events = topic_size(p.bootstrap, topics.model_events, p.partitions)
    model_events = [
        orjson.loads(m.value() or b"{}")
        for m in read_topic(
            p.bootstrap, topics.model_events, p.partitions, n_model_events, Deadline(p.timeout_s, "model events")
        )
    ]
    result |= {
        "candidates": candidates,
        "rate": p.rate,
        "served": len(outputs),
        "offered": run.events,
        "missing": run.missing,
        "dead_letters": topic_size(p.bootstrap, topics.dead_letters, p.partitions),
        "labelled_offered": labelled,
        "last_output_after_stop_requested_s": round((run.stop_requested_ms - last_output_ms) / 1000, 3),
        "routes": dict(Counter(orjson.loads(item[3] or b"{}").get("route") for item, _ in outputs)),
        "micro_batches": micro_batches(outputs),
        "timeline": timeline(outputs),
        "models": models(model_events, last_output_ms),
        "decisions": dict(Counter(decision(e) for e in model_events if e.get("type") == "decision")),
        "settings": {
            "model": settings.model.model_dump(mode="json"),
            "promotion": settings.promotion.model_dump(mode="json"),
            "runtime": settings.runtime.model_dump(mode="json"),
        },
    }
    return result


def decision(event: dict[str, Any]) -> str:
    """The action, with the group's first champion (a promote that replaces nothing) told apart."""
    action = str(event.get("action"))
    return "install" if action == "promote" and event.get("previous") is None else action


def is_labelled(value: bytes) -> bool:
    return orjson.loads(value).get("label") is not None


def micro_batches(outputs: list[tuple[Received, int]]) -> dict[str, Any]:
    """Measured events per served micro-batch (predictions of one batch share ``predicted_ts_ms``)."""
    sizes = Counter(orjson.loads(item[3] or b"{}").get("predicted_ts_ms") for item, _ in outputs)
    counts = list(sizes.values())
    return {
        "count": len(counts),
        "mean_size": round(sum(counts) / len(counts), 1) if counts else None,
        "max_size": max(counts, default=0),
    }


def timeline(outputs: list[tuple[Received, int]]) -> list[dict[str, float]]:
    """Latency per second of input time: where in the run the slow outputs were."""
    if not outputs:
        return []
    first = min(ts for _, ts in outputs)
    buckets: dict[int, list[float]] = defaultdict(list)
    for item, ts in outputs:
        buckets[int((ts - first) // 1000)].append(item[0] - ts)
    out = []
    for second in sorted(buckets):
        arr = np.asarray(buckets[second])
        p50, p99 = np.percentile(arr, [50, 99]).tolist()
        out.append({"s": second, "n": len(arr), "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
                    "max_ms": round(float(arr.max()), 1)})  # fmt: skip
    return out


def models(events: list[dict[str, Any]], last_output_ms: float) -> dict[str, dict[str, Any]]:
    """Per model (slot), from its ``report`` records: what it scored and learned, how far behind it was."""
    reports: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e.get("type") == "report" and e.get("role") != "serving":
            reports[str(e["model"])].append(e)
    out: dict[str, dict[str, Any]] = {}
    for name, rs in reports.items():
        rs.sort(key=lambda r: (r["ts_ms"], r["batch"]))
        serving = [r for r in rs if r["ts_ms"] <= last_output_ms]
        lags = [int(r.get("lag_batches", 0)) for r in rs]
        out[name] = {
            "role": rs[-1]["role"],
            "versions": sorted({str(r["version"]) for r in rs}),
            "reports": len(rs),
            "labelled_scored": sum(int(r.get("n_labelled", 0)) for r in rs),
            "learned": sum(int(r.get("n_learned", 0)) for r in rs),
            "learned_while_serving": sum(int(r.get("n_learned", 0)) for r in serving),
            "lag_batches_max": max(lags, default=0),
            "lag_batches_at_last_prediction": int(serving[-1].get("lag_batches", 0)) if serving else None,
            "lag_batches_final": lags[-1] if lags else None,
            "skipped_batches_total": max((int(r.get("skipped_batches_total", 0)) for r in rs), default=0),
            "errors": sum(1 for r in rs if r.get("error") and "skipped batch" not in str(r["error"])),
            "learn_ms": percentiles([float(r.get("learn_ms", 0.0)) for r in rs if r.get("n_learned")]),
            "rolling_accuracy_final": rs[-1].get("rolling_accuracy"),
        }
    return out


# -- report ---------------------------------------------------------------------------------------


def fill_ratios(runs: dict[str, dict[str, Any]], reference: str, names: list[str]) -> None:
    base = runs[reference]
    for name in names:
        run = runs[name]
        run["reference"] = reference
        run["p50_ratio"] = ratio(run.get("p50_ms"), base.get("p50_ms"))
        run["p99_ratio"] = ratio(run.get("p99_ms"), base.get("p99_ms"))


def fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def latency_rows(runs: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = [["run", "events/s", "served / offered", "p50 ms", "p99 ms", "max ms", "p50 ratio", "p99 ratio",
             "events / batch", "CPU s"]]  # fmt: skip
    for name, r in runs.items():
        rows.append([
            name, f"{r['rate']:,.0f}", f"{r['served']:,} / {r['offered']:,}", fmt(r.get("p50_ms"), ".1f"),
            fmt(r.get("p99_ms"), ".1f"), fmt(r.get("max_ms"), ".1f"), fmt(r.get("p50_ratio"), ".3f"),
            fmt(r.get("p99_ratio"), ".3f"), fmt(r["micro_batches"]["mean_size"], ".1f"), f"{r['process_cpu_s']:.1f}",
        ])  # fmt: skip
    return rows


def lane_rows(runs: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = [["run", "model", "labelled scored", "learned (while serving)", "lag max", "lag at last prediction",
             "skipped batches", "errors"]]  # fmt: skip
    for name, r in runs.items():
        for model, m in r["models"].items():
            rows.append([
                name, model, f"{m['labelled_scored']:,} / {r['labelled_offered']:,}",
                f"{m['learned']:,} ({m['learned_while_serving']:,})", str(m["lag_batches_max"]),
                str(m["lag_batches_at_last_prediction"]), str(m["skipped_batches_total"]), str(m["errors"]),
            ])  # fmt: skip
    return rows


def describe(name: str, candidates: list[dict[str, Any]]) -> str:
    models = ", ".join(
        f"{c['name']} ({c.get('learner') or 'a fork of the champion'}"
        f"{' ' + json.dumps(c['params']) if c.get('params') else ''})"
        for c in candidates
    )
    return f"{name}: {models or 'the champion only'}"


def render_markdown(report: dict[str, Any]) -> str:
    p, m, runs = report["params"], report["machine"], report["runs"]
    md = ["# Serving latency against the number of candidates", ""]
    md.append(
        f"Measured on {m['cpu_count']} CPU(s) ({m['cpu_model']}), Python {m['python']}, Apache Kafka "
        f"{m['kafka_version']} (single local broker), Bytewax {m['bytewax']}, River {m['river']}, torch "
        f"{m['torch']}; headwater commit {m['headwater_commit']}"
        f"{' with uncommitted changes' if m.get('headwater_dirty') else ''}. Produced by "
        f"`python -m bench.candidates` in {report['total_s']:.0f} s; load average (1/5/15 min) "
        f"{' / '.join(map(str, m['load_average_at_start']))} at the start."
    )
    md += ["", *render_markdown_table(latency_rows(runs)), ""]
    md.append(
        "Ratios are to the 0-candidate run of the same round, or at the same rate, in this run (`reference` in "
        "the JSON); the rounds run interleaved (0, 2, 4, 0, 2, 4), so that load from elsewhere on the machine "
        "shows up as a round that disagrees rather than as a trend."
    )
    md += ["", "## What each model did (from the model-events topic)", "", *render_markdown_table(lane_rows(runs))]
    md += ["", "## What was measured", ""]
    md.append(
        f"- Champion `{CHAMPION}`, {p['workers']} worker, micro-batches of at most {p['batch_max_size']} / "
        f"{p['batch_max_wait_ms']:g} ms, fresh {p['partitions']}-partition topics and a fresh registry per run; "
        f"the same events (synthetic workload, half with an inline label) in every run at one rate. "
        + "; ".join(
            [*(describe(n, c) for n, c in p["candidate_sets"].items()), describe("slow case", p["slow_candidates"])]
        )
        + "."
    )
    md.append(
        f"- Latency as in `bench.e2e_kafka`: a producer thread sends the events at a fixed rate "
        f"({p['rate']:,.0f}/s for {p['duration_s']:g} s; the slow case {p['slow_events']:,} at "
        f"{p['slow_rate']:,.0f}/s, its reference {p['slow_reference_s']:g} s at that rate) after about "
        f"{p['warmup_s']:g} s of warm-up events that are not counted, while `run_daemon` tails in a thread; "
        "latency = the reader's receive time - the input's Kafka timestamp (`event_ts_ms`)."
    )
    promotion = (
        "stock promotion gate (`--promote`)"
        if p["promote"]
        else "`promotion.min_improvement: 0.99`, so no candidate is ever promoted and the same frozen, "
        "untrained champion serves in every run: only the candidates differ (`--promote` keeps the stock gate)"
    )
    md.append(
        f"- {promotion}; `promotion.max_lag_batches` "
        f"{next(iter(runs.values()))['settings']['promotion']['max_lag_batches']}. 'Labelled scored' counts the "
        "labelled examples a model scored out of those offered (warm-up included); 'learned' sums `n_learned` "
        "of its reports, in brackets those reported before the last measured prediction arrived (the rest "
        "was learned from its backlog after the stop, before the daemon returned)."
    )
    md += ["", "## Notes", "", *notes(report), ""]
    return "\n".join(md)


def slowest_seconds(run: dict[str, Any], n: int = 5) -> str:
    """The ``n`` seconds (of input time) with the slowest predictions, in time order: ``8 s: 1192 ms``."""
    worst = sorted(sorted(run["timeline"], key=lambda b: -b["max_ms"])[:n], key=lambda b: b["s"])
    return ", ".join(f"{b['s']} s: {b['max_ms']:.0f} ms" for b in worst)


def notes(report: dict[str, Any]) -> list[str]:
    runs = report["runs"]
    out = []
    for name, r in runs.items():
        where = f"; slowest seconds (second of input time: slowest prediction) {slowest_seconds(r)}"
        out.append(
            f"- `{name}`: {r['served']:,} of {r['offered']:,} events served ({r['missing']} missing, "
            f"{r['duplicates']} duplicates, {r['dead_letters']} dead letters); system part (input produced → "
            f"prediction produced) p50 / p99 {r['input_to_output_produced']['p50_ms']:.0f} / "
            f"{r['input_to_output_produced']['p99_ms']:.0f} ms{where}; {r['micro_batches']['count']} batches of "
            f"{r['micro_batches']['mean_size']} events on average; decisions {r['decisions'] or 'none'}; process CPU "
            f"{r['process_cpu_s']} s; `run_daemon` returned {r['stopped_after_stop_s']} s after the stop."
        )
    out.append(
        "- Bytewax snapshots every stateful step at each epoch end (`runtime.snapshot_interval_s`, 10 s by "
        "default), with or without a recovery store, on the worker thread that also serves; the train step's "
        "snapshot (`Lane.snapshot`) waits for each lane's job in progress and then copies its model."
        + (
            " The `no epoch end` run repeats the slow case with `runtime.snapshot_interval_s` "
            f"{LONG_EPOCH_S:g} s, so that no epoch ends while it runs: the difference between the two is what "
            "the snapshots cost serving."
            if any(name.endswith("no epoch end") for name in runs)
            else ""
        )
    )
    out.append(
        "- One process: the daemon, its thread lanes, the producer and the reader share the GIL and this "
        "machine's cores with the broker; process lanes run in processes of their own at SCHED_IDLE, forked "
        "from one server started at the beginning, as a daemon with these learners starts it. Numbers from one "
        "run, not averaged; p99 and max move between runs far more than p50."
    )
    return out


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    p = parse_args(argv)
    started = time.perf_counter()
    machine = machine_info(p)
    n_fast = round(p.rate * p.duration_s)
    n_ref = round(p.slow_rate * p.slow_reference_s)
    log.info("generating %d events", max(n_fast, p.slow_events, n_ref))
    events = make_events(max(n_fast, p.slow_events, n_ref))
    if "process" in p.lanes:  # what a daemon does at start-up, once for all the runs of this process
        start_lane_server(["learners.river_learner", "learners.torch_learner", "learners.moa", "river.forest"])
    runs: dict[str, dict[str, Any]] = {}
    slow = dataclasses.replace(p, rate=p.slow_rate, duration_s=p.slow_events / p.slow_rate)
    slow_reference = dataclasses.replace(p, rate=p.slow_rate, duration_s=p.slow_reference_s)
    try:
        for r in range(1, p.rounds + 1):  # interleaved: a burst of load elsewhere hits one round, not one set
            suffix = f", round {r}" if p.rounds > 1 else ""
            reference = f"0 candidates{suffix}"
            runs[reference] = run_one(p, reference, [], events[:n_fast])
            names = []
            for lanes in p.lanes:
                for name, candidates in list(CANDIDATE_SETS.items())[1:]:
                    names.append(f"{name}, {lanes} lanes{suffix}")
                    runs[names[-1]] = run_one(p, names[-1], candidates, events[:n_fast], {"lanes": lanes})
            fill_ratios(runs, reference, names)
        if p.slow_events:
            ref_name = f"0 candidates @ {p.slow_rate:g}/s"
            runs[ref_name] = run_one(slow_reference, ref_name, [], events[:n_ref])
            names = []
            for lanes in p.lanes:
                names.append(f"{p.slow_learner} candidate @ {p.slow_rate:g}/s, {lanes} lanes")
                arf_events = events[: p.slow_events]
                runs[names[-1]] = run_one(slow, names[-1], slow_candidates(p), arf_events, {"lanes": lanes})
                if p.long_epoch_run:
                    names.append(f"{p.slow_learner} candidate @ {p.slow_rate:g}/s, {lanes} lanes, no epoch end")
                    long_epoch = {"snapshot_interval_s": LONG_EPOCH_S, "lanes": lanes}
                    runs[names[-1]] = run_one(slow, names[-1], slow_candidates(p), arf_events, long_epoch)
            fill_ratios(runs, ref_name, names)
    finally:
        if not p.keep_topics:
            log.info("deleting the %d topics of this run", len(CREATED))
            delete_topics(p.bootstrap, CREATED)
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(p).items()}
    params |= {"champion": CHAMPION, "candidate_sets": CANDIDATE_SETS, "slow_candidates": slow_candidates(p)}
    report = {"params": params, "machine": machine, "runs": runs, "total_s": round(time.perf_counter() - started, 1)}
    print(render_text(latency_rows(runs)), render_text(lane_rows(runs)), sep="\n\n")
    p.out_dir.mkdir(parents=True, exist_ok=True)
    (p.out_dir / f"{p.stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (p.out_dir / f"{p.stem}.md").write_text(render_markdown(report))
    print(f"\nwrote {p.out_dir / p.stem}.json and .md in {report['total_s']:.0f} s")
    failed = [n for n, r in runs.items() if r["missing"] or not r["stopped_within_bound"]]
    if failed:
        print(f"not every event was served, or the daemon did not stop in time: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(2)
