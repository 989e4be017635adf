"""MOA learners behind Headwater (issue 14): how to call them, whether an adaptive random forest as
champion keeps up with 5,000 events/s, and what a MOA learner costs at start-up and in memory.

Three parts (``--parts``), one after the other, on the same seeded stream (a `bench.parity` stream,
``--stream``; default ``rbf``: River's RandomRBFDrift, 10 numeric features, 2 classes):

1. **calls**: for ``moa-hat`` and ``moa-arf`` (10 members), predict + learn events/s on the first
   ``--calls-events`` events (5 times as many for the single tree), three ways, each on a fresh
   learner built the same way (same seed):
   *per-event JPype* (one ``DenseInstance`` per event, ``setDataset`` with the learner's header, then
   ``getVotesForInstance`` and ``trainOnInstance`` on the MOA object: two Python→Java calls per event,
   plus the votes back as an array), *batched bridge* (`learners.moa.MoaLearner.predict_proba` then
   ``learn`` on batches of ``--calls-batch``: two calls per batch, what Headwater does) and the
   *CapyMOA API* (``LabeledInstance.from_array``, ``predict_proba``, ``train``: the "alone" side of part
   2). First a JIT warm-up: each way once on 5,000 events of another seed of the stream. Then
   ``--calls-rounds`` rounds, the order of the ways reversed every other round; the median of each
   way, and batched ÷ per-event. After each run the learner's probabilities on 500 probe events are
   kept: the three ways must leave the same model (the largest difference is reported).
2. **throughput**: ``moa-arf`` (10 members) as the champion of a daemon with Headwater's default
   model configuration (`daemon.runner.run_daemon` in a thread, fresh topics and registry): one
   fork candidate that learns, the shadow gate, default micro-batches, lanes ``auto`` (threads on a
   machine with fewer than 3 CPUs), 1 worker, one partition (the stream's order). ``--rate`` (5,000)
   events/s for ``--duration`` (30) s are sent with `bench.common.measure_latency` (a warm-up of other
   ids first, until the first prediction and then ``--warmup`` s at the rate), **every event with its
   label inline**: the fork is offered as many labelled examples per second as events, more than a
   10-member forest learns on one core, so what it learns per second is its capacity behind
   Headwater. Every event must get exactly one prediction (read back from the predictions topic;
   exit status 1 otherwise). From the model-events topic's ``report`` records: the fork's examples
   learned per second while the measured events were sent (reports stamped between the first and
   the last measured event's input timestamp), its backlog (``lag_batches``) and the batches it
   skipped (a lane more than ``promotion.max_lag_batches`` batches or ``max_lag_s`` behind skips its
   oldest: those examples are never learned; their count is read from the skip reports). Then, in
   the same process, after the daemon stopped: **CapyMOA alone** on the same measured events,
   ``AdaptiveRandomForestClassifier(schema, ensemble_size=10, random_seed=...)`` with
   ``predict_proba(inst)`` + ``train(inst)`` per ``LabeledInstance.from_array(schema, x, y)``, and
   **the bridge alone** (Headwater's learner, batches of 100, no daemon), events/s. The ratio
   fork-learned/s ÷ CapyMOA-alone events/s is issue 14's (≥ 0.8 wanted, else the lag is reported).
   A JIT warm-up (each way on 5,000 events of another seed) comes first.
3. **startup**: fresh ``python -c`` processes, ``--startup-reps`` times each (interleaved): import
   Headwater's learners only; build ``river-logreg``; build River's ``ARFClassifier`` (10 trees);
   build ``moa-arf`` (the JVM starts and the bridge is compiled); the two forests again, then
   predict + learn ``--startup-events`` events of the stream (batches of 100); and the daemon's
   start-up check (`daemon.runner.check_learner`, after importing the daemon) for ``river-logreg``
   and ``moa-arf``. Wall time from spawn to exit, the phases timed inside the child, and peak resident
   memory (the child's ``VmHWM``, JVM included: it runs in the process); medians. CapyMOA starts
   the JVM with ``CAPYMOA_JVM_ARGS`` (default ``-Xmx8g -Xss10M``).

Run from the repository root with the broker up (``scripts/kafka-local up``)::

    .venv/bin/python -m bench.moa               # writes bench/results/moa.{json,md}, ~6 min on 2 cores
    .venv/bin/python -m bench.moa --quick       # a smoke run, ~1 min
    .venv/bin/python -m bench.moa --parts calls,startup
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.alone import capymoa_classifier
from bench.candidates import decision, micro_batches, models, prediction_ts
from bench.common import (
    CREATED,
    REPO,
    BenchError,
    Deadline,
    HeadwaterTopics,
    Payload,
    Runner,
    check_settings,
    create_topics,
    delete_topics,
    machine_info,
    measure_latency,
    measured_outputs,
    ratio,
    read_topic,
    render_markdown_table,
    render_text,
    summarize_latency,
    topic_size,
)
from bench.report import moa_versions
from bench.streams import LEARNER_SPECS, STREAMS, FloatArray, IntArray, Stream
from daemon.config import Settings, load_settings
from daemon.runner import run_daemon
from learners import LearnerSpec, build_learner
from learners.moa import MoaLearner, moa_module

log = logging.getLogger("bench.moa")

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ("calls", "throughput", "startup")
CALL_SPECS = {"moa-hat": LearnerSpec("moa-hat", {}, 0), "moa-arf": LEARNER_SPECS["moa-arf"]}
CALL_EVENTS_FACTOR = {"moa-hat": 5, "moa-arf": 1}  # a single tree is ~15x faster: more events, same precision
WAYS = ("per-event JPype", "batched bridge", "CapyMOA API")
WARM_EVENTS = 5000  # JIT warm-up events, of another seed of the stream
PROBE_EVENTS = 500
BRIDGE_BATCH = 100  # the bridge-alone batch in part 2
SKIPPED = re.compile(r"skipped batch \d+ \((\d+) examples\)")


@dataclass(frozen=True)
class Params:
    bootstrap: str
    partitions: int
    parts: tuple[str, ...]
    stream: str
    seed: int
    model_seed: int
    calls_events: int
    calls_batch: int
    calls_rounds: int
    rate: float
    duration_s: float
    warmup_s: float
    timeout_s: float
    startup_reps: int
    startup_events: int
    keep_topics: bool
    out_dir: Path
    quick: bool


# -- 1. calls -------------------------------------------------------------------------------------


def moa_learner(spec: LearnerSpec, s: Stream) -> MoaLearner:
    learner = build_learner(spec, n_features=len(s.features), n_classes=2, feature_names=s.features)
    if not isinstance(learner, MoaLearner):
        msg = f"{spec.name} did not build a MoaLearner"
        raise BenchError(msg)
    return learner


def per_event(learner: MoaLearner, x: FloatArray, y: IntArray, batch: int) -> None:
    """A ``DenseInstance`` per event (features, then the label), two JPype calls per event; rows
    handed over a batch at a time, as the daemon would hand them."""
    jpype = moa_module("jpype")
    dense = jpype.JClass("com.yahoo.labs.samoa.instances.DenseInstance")
    doubles = jpype.JArray(jpype.JDouble)
    header, model = learner._header, learner.model
    for at in range(0, len(y), batch):
        rows = np.column_stack([x[at : at + batch], y[at : at + batch]]).astype(np.float64)
        for row in rows:
            instance = dense(1.0, doubles(row))
            instance.setDataset(header)
            np.asarray(model.getVotesForInstance(instance), dtype=np.float64)
            model.trainOnInstance(instance)


def batched(learner: MoaLearner, x: FloatArray, y: IntArray, batch: int) -> None:
    for at in range(0, len(y), batch):
        learner.predict_proba(x[at : at + batch])
        learner.learn(x[at : at + batch], y[at : at + batch])


def capymoa_api(model: Any, x: FloatArray, y: IntArray) -> list[float]:
    """CapyMOA alone: an instance per event, ``predict_proba`` then ``train``; the time of each half."""
    labeled = moa_module("capymoa.core").LabeledInstance
    schema = model.schema
    predict_s = train_s = 0.0
    for i in range(len(y)):
        t0 = time.perf_counter()
        instance = labeled.from_array(schema, x[i], int(y[i]))
        model.predict_proba(instance)
        t1 = time.perf_counter()
        model.train(instance)
        t2 = time.perf_counter()
        predict_s += t1 - t0
        train_s += t2 - t1
    return [predict_s, train_s]


def one_way(way: str, spec: LearnerSpec, s: Stream, x: FloatArray, y: IntArray, batch: int) -> tuple[float, Any]:
    """Predict + learn ``x, y`` one way on a fresh learner: the seconds it took, and the learner's
    probabilities on the probe events afterwards."""
    if way == "CapyMOA API":
        model = capymoa_classifier(spec, s.features, 2)
        t0 = time.perf_counter()
        capymoa_api(model, x, y)
        seconds = time.perf_counter() - t0
        learner = MoaLearner(model.moa_learner, len(s.features), 2, s.features)
    else:
        learner = moa_learner(spec, s)
        t0 = time.perf_counter()
        (per_event if way == "per-event JPype" else batched)(learner, x, y, batch)
        seconds = time.perf_counter() - t0
    return seconds, learner.predict_proba(s.x[-PROBE_EVENTS:])


def calls(p: Params, s: Stream, warm: Stream) -> dict[str, Any]:
    out: dict[str, Any] = {"batch": p.calls_batch, "rounds": p.calls_rounds, "learners": {}}
    for name, spec in CALL_SPECS.items():
        n = min(p.calls_events * CALL_EVENTS_FACTOR[name], len(s.y) - PROBE_EVENTS)
        x, y = s.x[:n], s.y[:n]
        log.info("calls: %s, JIT warm-up", name)
        for way in WAYS:
            one_way(way, spec, warm, warm.x[:WARM_EVENTS], warm.y[:WARM_EVENTS], p.calls_batch)
        rates: dict[str, list[float]] = {way: [] for way in WAYS}
        probes: dict[str, Any] = {}
        for r in range(p.calls_rounds):
            for way in WAYS if r % 2 == 0 else WAYS[::-1]:
                seconds, probe = one_way(way, spec, s, x, y, p.calls_batch)
                rates[way].append(round(n / seconds, 1))
                probes.setdefault(way, probe)
                log.info("calls: %s, %s: %.0f events/s", name, way, n / seconds)
        median = {way: statistics.median(v) for way, v in rates.items()}
        reference = probes["batched bridge"]
        out["learners"][name] = {
            "spec": asdict(spec),
            "events": n,
            "events_per_s": rates,
            "median_events_per_s": median,
            "batched_over_per_event": ratio(median["batched bridge"], median["per-event JPype"]),
            "batched_over_per_event_by_round": [
                ratio(b, e) for b, e in zip(rates["batched bridge"], rates["per-event JPype"], strict=True)
            ],
            "batched_over_capymoa_api": ratio(median["batched bridge"], median["CapyMOA API"]),
            "same_model_max_abs_diff": {
                way: float(np.max(np.abs(probe - reference))) for way, probe in probes.items() if probe is not reference
            },
        }
    return out


# -- 2. throughput --------------------------------------------------------------------------------


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
        kafka={
            "bootstrap_servers": p.bootstrap,
            "events_topic": topics.events,
            "labels_topic": topics.labels,
            "predictions_topic": topics.predictions,
            "dead_letter_topic": topics.dead_letters,
            "model_events_topic": topics.model_events,
            "partitions": p.partitions,
        },
        schema={"features": s.features, "classes": [0, 1]},
        model={"learner": spec.name, "params": dict(spec.params), "seed": p.model_seed},
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
    topics = HeadwaterTopics.fresh("moa")
    create_topics(p, topics.all())
    events = payloads(s)
    with tempfile.TemporaryDirectory(prefix="headwater-bench-registry-") as registry:
        settings = settings_for(p, s, topics, Path(registry))
        check_settings(settings, topics)

        def start(stop: threading.Event, deadline: Deadline) -> Runner:
            runner = Runner("bench-headwater", lambda: run_daemon(settings, stop, create_topics=False))
            runner.start()
            return runner

        log.info("throughput: %d events at %.0f/s through Headwater (moa-arf champion)", len(events), p.rate)
        busy0 = cpu_ticks()
        run = measure_latency(p, "moa-arf", events, topics.events, topics.predictions, start, require_all=False)
        busy1 = cpu_ticks()
    latency = summarize_latency(run, prediction_ts)
    outputs, _ = measured_outputs(run, prediction_ts)
    first_ms = min(ts for _, ts in outputs) if outputs else 0
    last_ms = max(ts for _, ts in outputs) if outputs else 0
    read = Deadline(p.timeout_s, "reading back")
    # Exactly one prediction per event: every prediction on the topic, not only what the reader saw.
    n_predictions = topic_size(p.bootstrap, topics.predictions, p.partitions)
    counts = Counter(
        str(orjson.loads(m.value() or b"{}").get("id"))
        for m in read_topic(p.bootstrap, topics.predictions, p.partitions, n_predictions, read)
    )
    wanted = run.wanted
    served = sum(1 for i in wanted if counts[i] >= 1)
    duplicates = sum(counts[i] - 1 for i in wanted if counts[i] > 1)
    n_model_events = topic_size(p.bootstrap, topics.model_events, p.partitions)
    model_events = [
        orjson.loads(m.value() or b"{}")
        for m in read_topic(p.bootstrap, topics.model_events, p.partitions, n_model_events, read)
    ]
    last_output_ms = max((item[0] for item, _ in outputs), default=run.stop_requested_ms)
    return {
        "offered": len(events),
        "served": served,
        "duplicates": duplicates,
        "every_event_exactly_once": served == len(events) and duplicates == 0,
        "dead_letters": topic_size(p.bootstrap, topics.dead_letters, p.partitions),
        "warmup_events": run.warmup_events,
        # the whole machine (broker, producer, reader included), warm-up to stop, in CPUs
        "machine_cpus_busy": round((busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1) * (os.cpu_count() or 1), 2),
        "latency": latency,
        "micro_batches": micro_batches(outputs),
        "fork": fork_learning(model_events, first_ms, last_ms),
        "models": models(model_events, last_output_ms),
        "decisions": dict(Counter(decision(e) for e in model_events if e.get("type") == "decision")),
        "settings": {
            "model": settings.model.model_dump(mode="json"),
            "promotion": settings.promotion.model_dump(mode="json"),
            "batching": settings.batching.model_dump(mode="json"),
            "runtime": settings.runtime.model_dump(mode="json"),
            "candidates_in_processes": settings.runtime.lane_processes(len(settings.model.candidates)),
        },
    }


def cpu_ticks() -> tuple[int, int]:
    """Busy and total CPU ticks of the whole machine so far (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def capymoa_alone(p: Params, s: Stream) -> dict[str, Any]:
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


def bridge_alone(p: Params, s: Stream) -> dict[str, Any]:
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
    capy = capymoa_alone(p, s)
    log.info("throughput: the bridge alone on %d events", len(s.y))
    bridge = bridge_alone(p, s)
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


# -- 3. start-up and memory -----------------------------------------------------------------------

CHILD = """
import json, time
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
NAMES = {names!r}
{build}
t2 = time.perf_counter()
{learn}
t3 = time.perf_counter()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({{"import_s": t1 - t0, "build_s": t2 - t1, "learn_s": t3 - t2,
                  "max_rss_mib": int(status["VmHWM"].split()[0]) / 1024}}))
"""
LEARN = """
import numpy as np
data = np.load({path!r})
x, y = data["x"], data["y"]
for at in range(0, len(y), 100):
    learner.predict_proba(x[at : at + 100])
    learner.learn(x[at : at + 100], y[at : at + 100])
"""
LEARNERS_IMPORT = "from learners import LearnerSpec, RiverLearner, build_learner"
RIVER_ARF = "from river import forest\nlearner = RiverLearner(forest.ARFClassifier(n_models=10, seed=0), 10, 2, NAMES)"
MOA_ARF = "learner = build_learner(LearnerSpec('moa-arf', {'ensemble_size': 10}, 0), n_features=10, n_classes=2, feature_names=NAMES)"  # noqa: E501
DAEMON_IMPORT = "from daemon.config import load_settings\nfrom daemon.runner import check_learner"
CHECK = "check_learner(load_settings(None, schema={{'features': NAMES, 'classes': [0, 1]}}, model={model!r}))"
STARTUP_CASES: dict[str, tuple[str, str, bool]] = {  # name: imports, build, learn the events
    "import learners": (LEARNERS_IMPORT, "pass", False),
    "build river-logreg": (
        LEARNERS_IMPORT,
        "learner = build_learner(LearnerSpec('river-logreg', {}, 0), n_features=10, n_classes=2, feature_names=NAMES)",
        False,
    ),
    "build River ARF(10)": (LEARNERS_IMPORT, RIVER_ARF, False),
    "build moa-arf(10)": (LEARNERS_IMPORT, MOA_ARF, False),
    "River ARF(10) + events": (LEARNERS_IMPORT, RIVER_ARF, True),
    "moa-arf(10) + events": (LEARNERS_IMPORT, MOA_ARF, True),
    "daemon check, river-logreg": (DAEMON_IMPORT, CHECK.format(model={"learner": "river-logreg"}), False),
    "daemon check, moa-arf(10)": (
        DAEMON_IMPORT,
        CHECK.format(model={"learner": "moa-arf", "params": {"ensemble_size": 10}}),
        False,
    ),
}


def child(code: str, timeout_s: float) -> dict[str, Any]:
    """Run ``python -c code`` from the repository root: wall time from spawn to exit, and what the
    child printed: its phases and its peak resident memory (``VmHWM``, read by the child at its end).
    Not ``ru_maxrss`` from ``wait4``: on Linux it keeps the high-water mark from before ``exec``, the
    benchmark's own memory as the forked child shared it."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout_s, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        msg = f"a start-up child ran past {timeout_s:g} s"
        raise BenchError(msg) from exc
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        msg = f"a start-up child failed ({done.returncode}): {done.stderr[-2000:]}"
        raise BenchError(msg)
    return {"wall_s": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def startup(p: Params, s: Stream) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="headwater-bench-moa-") as tmp:
        data = Path(tmp) / "events.npz"
        np.savez(data, x=s.x[: p.startup_events], y=s.y[: p.startup_events])
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in STARTUP_CASES}
        for rep in range(p.startup_reps):
            for name, (imports, build, learn) in STARTUP_CASES.items():
                code = CHILD.format(imports=imports, names=s.features, build=build,
                                    learn=LEARN.format(path=str(data)) if learn else "")  # fmt: skip
                runs[name].append(child(code, p.timeout_s))
                log.info("startup %d: %s: %.2f s, %.0f MiB", rep + 1, name, runs[name][-1]["wall_s"],
                         runs[name][-1]["max_rss_mib"])  # fmt: skip
    medians = {
        name: {key: round(statistics.median(r[key] for r in rs), 3) for key in rs[0]} for name, rs in runs.items()
    }
    return {"reps": p.startup_reps, "events": p.startup_events, "median": medians, "runs": runs,
            "capymoa_jvm_args": os.environ.get("CAPYMOA_JVM_ARGS", "-Xmx8g -Xss10M (CapyMOA's default)")}  # fmt: skip


# -- report ---------------------------------------------------------------------------------------


def fmt(v: float | None, spec: str = ",.0f") -> str:
    return "n/a" if v is None else format(v, spec)


def calls_rows(c: dict[str, Any]) -> list[list[str]]:
    out = [["learner", "events", *(f"{w} events/s" for w in WAYS), "batched / per-event", "by round",
            "batched / CapyMOA API", "same model (max prob. diff)"]]  # fmt: skip
    for name, r in c["learners"].items():
        m = r["median_events_per_s"]
        out.append([
            name, f"{r['events']:,}", *(fmt(m[w]) for w in WAYS), fmt(r["batched_over_per_event"], ".2f"),
            " / ".join(fmt(x, ".2f") for x in r["batched_over_per_event_by_round"]),
            fmt(r["batched_over_capymoa_api"], ".2f"),
            ", ".join(f"{w}: {v:.1e}" for w, v in r["same_model_max_abs_diff"].items()),
        ])  # fmt: skip
    return out


def throughput_rows(t: dict[str, Any]) -> list[list[str]]:
    hw, fork = t["headwater"], t["headwater"]["fork"]
    lat = hw["latency"]
    return [
        ["what", "value"],
        ["events offered (labelled, inline) / served / duplicates",
         f"{hw['offered']:,} / {hw['served']:,} / {hw['duplicates']:,}"],
        ["sent at (events/s)", fmt(lat.get("achieved_send_rate"))],
        ["latency p50 / p99 / max (ms)", f"{fmt(lat.get('p50_ms'), '.1f')} / {fmt(lat.get('p99_ms'), '.1f')} / "
                                         f"{fmt(lat.get('max_ms'), '.1f')}"],
        ["events per served micro-batch (mean / max)",
         f"{fmt(hw['micro_batches']['mean_size'], '.1f')} / {hw['micro_batches']['max_size']}"],
        ["fork: examples learned per s while the events were sent", fmt(fork["learned_per_s"])],
        ["fork: learned / skipped in that window (of ~offered)",
         f"{fork['learned_in_window']:,} / {fork['skipped_examples_in_window']:,} "
         f"(~{round(fork['window_s'] * t['rate']):,})"],
        ["fork: backlog (lag_batches) max / median in the window",
         f"{fork['lag_batches_max']} / {fmt(fork['lag_batches_in_window_median'], '.0f')}"],
        ["fork: skipped batches (examples), whole run", f"{fork['skipped_batches']:,} ({fork['skipped_examples']:,})"],
        ["fork: examples per s inside learn() (no scoring, no waiting)", fmt(fork["learn_only_per_s"])],
        ["machine CPUs busy, warm-up to stop (broker, producer, reader included)", fmt(hw["machine_cpus_busy"], ".2f")],
        ["decisions", ", ".join(f"{k} {v}" for k, v in sorted(hw["decisions"].items())) or "none"],
        ["CapyMOA alone: predict + train events/s (same events)", fmt(t["capymoa_alone"]["events_per_s"])],
        ["CapyMOA alone: events per s inside train()", fmt(t["capymoa_alone"]["train_only_per_s"])],
        ["the bridge alone: predict + learn events/s, batches of 100", fmt(t["bridge_alone"]["events_per_s"])],
        ["**fork learned/s ÷ CapyMOA alone events/s**", f"**{fmt(t['fork_learned_over_capymoa_alone'], '.3f')}**"],
        ["fork learned/s ÷ bridge alone events/s", fmt(t["fork_learned_over_bridge_alone"], ".3f")],
    ]  # fmt: skip


def startup_rows(st: dict[str, Any]) -> list[list[str]]:
    out = [["process", "wall s", "imports s", "build s", "predict + learn s", "peak RSS MiB"]]
    for name, m in st["median"].items():
        learn = fmt(m["learn_s"], ".2f") if m["learn_s"] > 0.001 else "-"
        out.append([name.replace("+ events", f"+ {st['events']:,} events"), fmt(m["wall_s"], ".2f"),
                    fmt(m["import_s"], ".2f"), fmt(m["build_s"], ".2f"), learn, fmt(m["max_rss_mib"])])  # fmt: skip
    return out


def verdicts(report: dict[str, Any]) -> list[str]:
    out = []
    if c := report.get("calls"):
        for name, r in c["learners"].items():
            out.append(
                f"- {name}: batched calls {fmt(r['batched_over_per_event'], '.2f')}x the events/s of per-event JPype "
                f"calls (median of {c['rounds']}), {fmt(r['batched_over_capymoa_api'], '.2f')}x CapyMOA's API; "
                + ("the faster is the batched bridge, which Headwater keeps."
                   if (r["batched_over_per_event"] or 0) >= 1 else "per-event calls were faster here.")
            )  # fmt: skip
    if t := report.get("throughput"):
        hw, fork, r = t["headwater"], t["headwater"]["fork"], t["fork_learned_over_capymoa_alone"]
        out.append(
            f"- ARF(10) as champion at {t['rate']:,.0f} events/s offered: "
            + ("every event served exactly once" if hw["every_event_exactly_once"] else
               f"NOT every event served exactly once ({hw['served']:,} of {hw['offered']:,}, "
               f"{hw['duplicates']} duplicates)")
            + f" (p50 {fmt(hw['latency'].get('p50_ms'), '.0f')} ms, p99 {fmt(hw['latency'].get('p99_ms'), '.0f')} ms)."
        )  # fmt: skip
        lag = fork["skipped_examples_in_window"]
        out.append(
            f"- The fork learned {fmt(fork['learned_per_s'])} examples/s against CapyMOA alone's "
            f"{fmt(t['capymoa_alone']['events_per_s'])} events/s (predict + train), ratio {fmt(r, '.3f')}: "
            + ("meets issue 14's 0.8." if (r or 0) >= 0.8 else f"below issue 14's 0.8 by {fmt(0.8 - (r or 0), '.3f')}.")
            + f" Offered {t['rate']:,.0f} labelled examples/s, it skipped {lag:,} examples in the window"
            f" ({fork['skipped_batches']:,} batches in the whole run) and was up to {fork['lag_batches_max']} batches "
            "behind"
            + (f"; CapyMOA alone does not reach {t['rate']:,.0f} events/s either."
               if t["capymoa_alone"]["events_per_s"] < t["rate"] else ".")
        )  # fmt: skip
    if st := report.get("startup"):
        m = st["median"]
        moa, river = m["build moa-arf(10)"], m["build river-logreg"]
        d_moa, d_river = m["daemon check, moa-arf(10)"], m["daemon check, river-logreg"]
        out.append(
            f"- Start-up: a fresh process that builds moa-arf(10) runs {fmt(moa['wall_s'], '.2f')} s from spawn to "
            f"exit, {fmt(moa['build_s'], '.2f')} s of it building (JVM start and bridge compile), against "
            f"{fmt(river['wall_s'], '.2f')} s for river-logreg ({fmt(river['build_s'], '.2f')} s building); it "
            f"peaks at {fmt(moa['max_rss_mib'])} MiB against {fmt(river['max_rss_mib'])} MiB. The daemon's start-up "
            f"check (whole process): {fmt(d_moa['wall_s'], '.2f')} s and {fmt(d_moa['max_rss_mib'])} MiB with moa-arf, "
            f"{fmt(d_river['wall_s'], '.2f')} s and {fmt(d_river['max_rss_mib'])} MiB with river-logreg."
        )  # fmt: skip
    return out


def render_markdown(report: dict[str, Any]) -> str:
    p, m = report["params"], report["machine"]
    md = ["# MOA learners behind Headwater: calls, throughput, start-up", ""]
    md.append(
        f"Measured on {m['cpu_count']} CPU(s) ({m['cpu_model']}), Python {m['python']}, Apache Kafka "
        f"{m['kafka_version']} (single local broker), Bytewax {m['bytewax']}, River {m['river']}, CapyMOA "
        f"{m['capymoa']} on {m['java']}; headwater commit {m['headwater_commit']}"
        f"{' with uncommitted changes' if m.get('headwater_dirty') else ''}. Produced by `python -m bench.moa"
        f"{' ' + ' '.join(report['argv']) if report['argv'] else ''}` in {report['total_s']:.0f} s; load average "
        f"{' / '.join(map(str, m['load_average_at_start']))} at the start. Stream: {report['stream']}."
    )
    md += ["", "## What the numbers say", "", *verdicts(report), ""]
    if c := report.get("calls"):
        md += ["## Per-event JPype calls against the batched bridge", ""]
        md.append(
            "Predict + learn on the first *events* of the stream, a fresh learner per run (same seed), median of "
            f"{c['rounds']} rounds after a JIT warm-up; batches of {c['batch']}. *same model*: the largest difference "
            "of the probabilities given to 500 probe events by the learner each way left, against the batched one."
        )
        md += ["", *render_markdown_table(calls_rows(c)), ""]
    if t := report.get("throughput"):
        md += ["## ARF(10) as champion at 5,000 events/s against CapyMOA alone", ""]
        md.append(
            f"{t['events']:,} events at {t['rate']:,.0f}/s ({p['duration_s']:g} s), each with its label inline, "
            "through a daemon with Headwater's default model configuration (one fork candidate, shadow gate, "
            f"lanes `{t['headwater']['settings']['runtime']['lanes']}` → "
            f"{'processes' if t['headwater']['settings']['candidates_in_processes'] else 'threads'} here); CapyMOA "
            "alone and the bridge alone on the same events afterwards, in the same process (module docstring)."
        )
        md += ["", *render_markdown_table(throughput_rows(t)), ""]
    if st := report.get("startup"):
        md += ["## Start-up time and memory, River against MOA", ""]
        md.append(
            f"Fresh `python -c` processes, median of {st['reps']}; wall = spawn to exit; peak RSS = the child's "
            f"`VmHWM` at its end (the JVM runs inside the process; JVM arguments: `{st['capymoa_jvm_args']}`)."
        )
        md += ["", *render_markdown_table(startup_rows(st)), ""]
    return "\n".join(md)


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Params:
    parser = argparse.ArgumentParser(
        prog="python -m bench.moa",
        description="MOA learners behind Headwater: per-event vs batched calls, ARF as champion at 5,000 "
        "events/s vs CapyMOA alone, start-up time and memory.",
    )
    add = parser.add_argument
    add("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    add("--partitions", type=int, default=1, help="partitions of every fresh topic")
    add("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    add("--stream", default="rbf", choices=sorted(STREAMS), help="the bench.parity stream")
    add("--seed", type=int, default=42, help="seed of the stream")
    add("--model-seed", type=int, default=1, help="seed of the forests")
    add("--calls-events", type=int, default=20_000, help="events per run of the calls part (moa-hat: 5x)")
    add("--calls-batch", type=int, default=100, help="batch of the batched bridge in the calls part")
    add("--calls-rounds", type=int, default=5, help="rounds of the calls part")
    add("--rate", type=float, default=5000.0, help="events/s offered in the throughput part")
    add("--duration", type=float, default=30.0, help="seconds of sending in the throughput part")
    add("--warmup", type=float, default=2.0, help="seconds of warm-up sending at the rate before measuring")
    add("--timeout", type=float, default=180.0, help="bound on every wait, seconds")
    add("--startup-reps", type=int, default=5, help="repetitions of each start-up process")
    add("--startup-events", type=int, default=5000, help="events predicted and learned by the '+ events' processes")
    add("--quick", action="store_true", help="a smoke run: 5,000 calls events, 1 round, 6 s of sending, 1 rep")
    add("--keep-topics", action="store_true", help="do not delete the benchmark's topics")
    add("--out-dir", type=Path, default=RESULTS, help="where moa.json and moa.md go")
    a = parser.parse_args(argv)
    parts = tuple(x.strip() for x in a.parts.split(",") if x.strip())
    if not parts or set(parts) - set(PARTS):
        parser.error(f"--parts takes some of {', '.join(PARTS)}")
    if a.quick:
        a.calls_events, a.calls_rounds, a.duration, a.startup_reps, a.startup_events = 5000, 1, 6.0, 1, 2000
    for name in ("calls_events", "calls_batch", "calls_rounds", "rate", "duration", "timeout", "startup_reps",
                 "startup_events", "partitions"):  # fmt: skip
        if getattr(a, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return Params(
        bootstrap=a.bootstrap, partitions=a.partitions, parts=parts, stream=a.stream, seed=a.seed,
        model_seed=a.model_seed, calls_events=a.calls_events, calls_batch=a.calls_batch, calls_rounds=a.calls_rounds,
        rate=a.rate, duration_s=a.duration, warmup_s=max(a.warmup, 0.0), timeout_s=a.timeout,
        startup_reps=a.startup_reps, startup_events=a.startup_events, keep_topics=a.keep_topics, out_dir=a.out_dir,
        quick=a.quick,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    args = sys.argv[1:] if argv is None else argv
    p = parse_args(args)
    started = time.perf_counter()
    machine = machine_info(p)
    n = max(round(p.rate * p.duration_s), p.calls_events * max(CALL_EVENTS_FACTOR.values()) + PROBE_EVENTS,
            p.startup_events)  # fmt: skip
    s = STREAMS[p.stream](n, p.seed)
    warm = STREAMS[p.stream](WARM_EVENTS + PROBE_EVENTS, p.seed + 1000)
    report: dict[str, Any] = {"argv": args, "stream": s.description}
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "calls": lambda: calls(p, s, warm),
        "throughput": lambda: throughput(p, take(s, round(p.rate * p.duration_s)), warm),
        "startup": lambda: startup(p, s),
    }
    try:
        for part in p.parts:
            report[part] = steps[part]()
    finally:
        if not p.keep_topics:
            delete_topics(p.bootstrap, CREATED)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(p).items()}
    report |= {"params": params, "machine": machine | moa_versions(),
               "total_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    for part, rows in (("calls", calls_rows), ("throughput", throughput_rows), ("startup", startup_rows)):
        if part in report:
            print(render_text(rows(report[part])) + "\n")
    print("\n".join(verdicts(report)))
    p.out_dir.mkdir(parents=True, exist_ok=True)
    (p.out_dir / "moa.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (p.out_dir / "moa.md").write_text(render_markdown(report))
    print(f"\nwrote {p.out_dir / 'moa.json'} and {p.out_dir / 'moa.md'} in {report['total_s']:.0f} s")
    t = report.get("throughput")
    if t is not None and not t["headwater"]["every_event_exactly_once"]:
        print("not every event got exactly one prediction", file=sys.stderr)
        return 1
    return 0


def take(s: Stream, n: int) -> Stream:
    """The first ``n`` events of ``s``."""
    return Stream(s.name, s.description, s.x[:n], s.y[:n], s.features, [c for c in s.changes if c < n])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(2)
