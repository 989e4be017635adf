"""Parity: does a learner behind Headwater learn as well as the same learner alone, on the same stream?

A user who moves a River model behind Headwater expects it to learn as well as it did in their
notebook, on the same stream with the same label delay (issue 13). For each learner (the built-ins of
`learners.factory.LEARNERS`, and a River model given by import path, `bench.parity:perceptron`) and
each stream (`STREAMS`, River's seeded synthetic generators, two classes, numeric features):

- **alone**: the learner built by `learners.build_learner`, fed one event at a time in memory by
  River's `river.stream.simulate_qa` with ``delay`` (default 200): each event is predicted
  (``predict_proba`` of one row) when it comes, and learned (``learn`` of one row) when its label
  comes, ``delay`` events later — a progressive validation with delay. For River models, River's own
  `river.evaluate.iter_progressive_val_score` with the same delay runs too (the "River pvs" column),
  as a check of the loop above;
- **Headwater**: the same events through the real broker to a daemon (`daemon.runner.run_daemon` in a
  process of its own, as in production: the producer and reader here took a fifth of its interpreter
  lock when it ran in a thread of this one; fresh topics and registry per run), sent at ``--rate``
  events/s, each event's label on the labels topic ``delay`` events after it (labels are interleaved
  with events, so the producer sends 2 x rate messages/s; the last ``delay`` labels follow the last
  event). Topics have one partition
  (``--partitions``), so the daemon sees the stream in the order the alone side does. Every served
  prediction is read back from the predictions topic and scored ("served"); every event must have
  exactly one, else the exit status is 1. The candidate's own prequential accuracy (its lane scores
  each labelled example before learning it) is summed from the ``report`` records of the
  model-events topic ("lane").

Headwater's champion never learns: a candidate learns and replaces it. The served side's
configuration is `served_config`: the learner under test as the first (untrained) champion and one
fork candidate (the champion's state, learning on; forked again from each new champion), in a
thread lane (no SCHED_IDLE process that may starve on a busy machine; ``--lanes process``: a process
lane) that never skips a batch.
With ``--gate refresh`` (the default) the fork replaces the champion as soon as it is not worse
than it over ``--refresh-samples`` paired examples (`evaluators.RefreshEvaluator`). With ``--gate
shadow`` it needs to be *significantly* better, even behind the most permissive shadow gate the
settings allow (`PERMISSIVE_GATE`: alpha 0.5, 10 paired examples before a verdict, a trial that has
not concluded after 500 starts over, no wait after a refusal, a 10-example probation): the served
model then lags the learner, which is what the "served" gap measured before the refresh gate. The
"lane" column is the learner's accuracy behind Headwater independent of promotion timing.

Scores, the same code for both sides (`scores`), on the label the stream delivers (for the
label-flip burst, the flipped label — what either side is told and scored on):

- **overall**: accuracy over every event, from event 0 (the cold start included);
- **worst window**: the lowest accuracy of any ``--window`` consecutive events (a sliding window, at
  every position) starting at or after ``--warmup`` (the cold start is not a drift);
- **recovery** after each abrupt change (the STAGGER concept switches; the end of the Agrawal flip
  burst): with ``d`` the change and ``e`` the next change (or the end of the stream), the settled
  level ``L`` is the accuracy over the second half of ``[d, e)``; recovery is the smallest ``k >= 0``
  such that the 1,000 events ``[d + k, d + k + 1000)`` have accuracy ``>= L - 0.02`` — the events
  after the change before accuracy is back within 2 points of where it settles (None: never).

Gaps are Headwater - alone, in points. Default: 30,000 events per stream at 3,000/s (10 s of sending
per run), not the issue's 60,000: with 60,000 the full default run (4 learners x 4 streams) would take
about 18 minutes on 2 cores, most of it the alone side of torch-mlp (one row per SGD step, ~2 ms), so
``--events 60000`` is for a machine with time to spare. ``--quick``: 12,000 events.

MOA learners (``--learners moa``: ``moa-arf``, ``moa-srp``, ``moa-levbag``, 10 members each; not in
the default run) are judged against **CapyMOA alone** (issue 14): CapyMOA's classifier itself, built
as `learners.moa` builds it (`capymoa_classifier`: the CapyMOA class on the schema `learners.moa`
makes, the same seed and parameters), fed one event at a time with the same delay: predicted
(``predict_proba`` of a `capymoa.core.Instance`) when the event comes, trained (``train`` of a
``LabeledInstance``) when its label comes. The "alone" column (Headwater's wrapper, one event per
call) stays, as a check of the wrapper. Bar: served within 0.5 point of CapyMOA alone overall and 3
points in the worst window; the lane against CapyMOA scored at label. Before a MOA learner's first
Headwater side, a JIT warm-up (`jit_warmup`). Results of a run with a MOA learner go to
``parity-moa.{json,md}`` (``--stem``), so that a MOA run does not overwrite the River/torch results.
A 10-member forest learns a few thousand events/s on one core, so the MOA run sends 1,000 events/s
(at 3,000 the fork falls ever further behind: it never skips here), and refreshes every 300 paired
examples: at 100 it served worse in quick runs (each promotion waits for the fork's job in progress,
then copies the forest, ~150 ms for ARF, on the thread that serves; `bench/results/HISTORY.md`).

Run from the repository root with the broker up (``scripts/kafka-local up``)::

    .venv/bin/python -m bench.parity                # writes bench/results/parity.{json,md}
    .venv/bin/python -m bench.parity --quick --learners river-logreg --streams stagger
    .venv/bin/python -m bench.parity --learners moa --rate 1000 --refresh-samples 300   # parity-moa.{json,md}
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from river import evaluate, metrics, stream
from river.datasets import synth

from bench.common import (
    CREATED,
    BenchError,
    Deadline,
    HeadwaterTopics,
    check_settings,
    create_topics,
    delete_topics,
    dist_version,
    machine_info,
    read_topic,
    render_markdown_table,
    render_text,
    topic_size,
)
from daemon.config import Settings, load_settings
from daemon.kafka_client import make_producer, produce_all
from daemon.runner import run_daemon
from learners import LearnerSpec, RiverLearner, build_learner

log = logging.getLogger("bench.parity")

RESULTS = Path(__file__).resolve().parent / "results"
LEARNER_SPECS: dict[str, LearnerSpec] = {
    "river-logreg": LearnerSpec("river-logreg", {}, 0),
    "river-hoeffding": LearnerSpec("river-hoeffding", {}, 0),
    "torch-mlp": LearnerSpec("torch-mlp", {"device": "cpu"}, 0),
    "bench.parity:perceptron": LearnerSpec("bench.parity:perceptron", {}, 0),
    # MOA's ensembles through CapyMOA, with their size written out: the CapyMOA reference is built
    # from the same spec (`capymoa_classifier`), and CapyMOA's own default is 100 members, not 10.
    "moa-arf": LearnerSpec("moa-arf", {"ensemble_size": 10}, 0),
    "moa-srp": LearnerSpec("moa-srp", {"ensemble_size": 10}, 0),
    "moa-levbag": LearnerSpec("moa-levbag", {"ensemble_size": 10}, 0),
}
BUILT_IN = ("river-logreg", "river-hoeffding", "torch-mlp")
DEFAULT_LEARNERS = (*BUILT_IN, "bench.parity:perceptron")
# The CapyMOA class behind each MOA built-in (as `learners.moa` builds it); ``--learners moa`` runs the first three.
MOA_CLASSES = {
    "moa-arf": "AdaptiveRandomForestClassifier",
    "moa-srp": "StreamingRandomPatches",
    "moa-levbag": "LeveragingBagging",
    "moa-hat": "HoeffdingAdaptiveTree",
    "moa-efdt": "EFDT",
}
MOA_LEARNERS = ("moa-arf", "moa-srp", "moa-levbag")
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


def served_config(p: Params) -> dict[str, Any]:
    """The served side's ``model.candidates``, ``promotion`` and ``runtime`` (``--gate``)."""
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


RECOVERY_WINDOW = 1000
RECOVERY_MARGIN = 0.02

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def perceptron(n_features: int, n_classes: int, feature_names: list[str], seed: int, **params: Any) -> Any:
    """A River model given by import path: standard-scaled `river.linear_model.Perceptron`."""
    from river import linear_model, preprocessing

    return preprocessing.StandardScaler() | linear_model.Perceptron(**params)


# -- streams --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    name: str
    description: str
    x: FloatArray
    y: IntArray
    features: list[str]
    changes: list[int]  # abrupt changes after which recovery is measured


def _take(gen: Iterator[tuple[dict[Any, Any], Any]], n: int) -> tuple[list[dict[Any, Any]], list[int]]:
    xs, ys = [], []
    for _ in range(n):
        x, y = next(gen)
        xs.append(x)
        ys.append(int(y))
    return xs, ys


def _numeric(rows: list[dict[Any, Any]], prefix: str = "") -> tuple[FloatArray, list[str]]:
    keys = list(rows[0])
    x = np.array([[float(r[k]) for k in keys] for r in rows], dtype=np.float64)
    return x, [f"{prefix}{k}" for k in keys]


def hyperplane(n: int, seed: int) -> Stream:
    rows, y = _take(iter(synth.Hyperplane(seed=seed, n_features=10, n_drift_features=5, mag_change=0.001)), n)
    x, names = _numeric(rows, "x")
    desc = "rotating hyperplane, 10 features, 5 drifting (mag_change 0.001), 5 % noise: incremental drift"
    return Stream("hyperplane", desc, x, np.asarray(y, dtype=np.int64), names, [])


def rbf(n: int, seed: int) -> Stream:
    gen = synth.RandomRBFDrift(seed_model=seed, seed_sample=seed + 1, n_features=10, n_centroids=50,
                               change_speed=0.001, n_drift_centroids=25)  # fmt: skip
    rows, y = _take(iter(gen), n)
    x, names = _numeric(rows, "x")
    desc = "RandomRBFDrift, 10 features, 50 centroids of which 25 move (change_speed 0.001): incremental drift"
    return Stream("rbf", desc, x, np.asarray(y, dtype=np.int64), names, [])


def stagger(n: int, seed: int) -> Stream:
    """STAGGER's three concepts in turn (0, 1, 2), switching abruptly at n/3 and 2n/3; one-hot features."""
    cuts = [0, n // 3, 2 * n // 3, n]
    rows: list[dict[Any, Any]] = []
    y: list[int] = []
    for f in range(3):
        r, lab = _take(iter(synth.STAGGER(classification_function=f, seed=seed + f)), cuts[f + 1] - cuts[f])
        rows += r
        y += lab
    names = [f"{attr}_{v}" for attr in ("size", "color", "shape") for v in range(3)]
    x = np.array([[float(r[a] == v) for a in ("size", "color", "shape") for v in range(3)] for r in rows])
    desc = f"STAGGER, concept 0 → 1 → 2 switching abruptly at events {cuts[1]:,} and {cuts[2]:,}; one-hot features"
    return Stream("stagger", desc, x, np.asarray(y, dtype=np.int64), names, cuts[1:3])


def agrawal(n: int, seed: int) -> Stream:
    """Agrawal (function 0) with 35 % of labels flipped in [0.4 n, 0.5 n); scored on the flipped labels."""
    rows, y = _take(iter(synth.Agrawal(classification_function=0, seed=seed)), n)
    x, names = _numeric(rows)
    labels = np.asarray(y, dtype=np.int64)
    start, end = int(0.4 * n), int(0.5 * n)
    flip = np.random.default_rng(seed).random(end - start) < 0.35
    labels[start:end] = np.where(flip, 1 - labels[start:end], labels[start:end])
    desc = (f"Agrawal function 0 (numeric; categoricals as their codes), 35 % of labels flipped in events "
            f"[{start:,}, {end:,}): a label-flip burst; recovery measured from its end")  # fmt: skip
    return Stream("agrawal", desc, x, labels, names, [end])


STREAMS: dict[str, Callable[[int, int], Stream]] = {
    "hyperplane": hyperplane,
    "rbf": rbf,
    "stagger": stagger,
    "agrawal": agrawal,
}


# -- scores ---------------------------------------------------------------------------------------


def scores(correct: NDArray[np.bool_], changes: list[int], window: int, warmup: int) -> dict[str, Any]:
    """Overall accuracy, the worst window after the warm-up, and the recovery after each change."""
    n = len(correct)
    cum = np.concatenate([[0.0], np.cumsum(correct, dtype=np.float64)])

    def acc(a: int, b: int) -> float:
        return float((cum[b] - cum[a]) / (b - a))

    worst = None
    if n - window >= warmup:
        starts = np.arange(warmup, n - window + 1)
        sums = cum[starts + window] - cum[starts]
        i = int(np.argmin(sums))
        worst = {"accuracy": float(sums[i] / window), "start": int(starts[i])}
    recovery = []
    bounds = [*changes, n]
    for d, e in zip(changes, bounds[1:], strict=True):
        level = acc(d + (e - d) // 2, e)
        k = next(
            (
                k
                for k in range(0, e - d - RECOVERY_WINDOW + 1)
                if acc(d + k, d + k + RECOVERY_WINDOW) >= level - RECOVERY_MARGIN
            ),
            None,
        )
        recovery.append({"change": d, "settled": round(level, 4), "events": k})
    curve = [round(acc(a, min(a + 1000, n)), 4) for a in range(0, n, 1000)]  # accuracy per 1,000 events
    after = acc(warmup, n) if warmup < n else None
    return {"overall": float(cum[-1] / n), "after_warmup": after, "worst_window": worst, "recovery": recovery,
            "curve": curve}  # fmt: skip


# -- alone ----------------------------------------------------------------------------------------


def prequential(
    s: Stream, delay: int, predict: Callable[[int], int], learn: Callable[[int, int], None]
) -> tuple[NDArray[np.bool_], float, float]:
    """Event ``i`` predicted (``predict(i)``, a class index) when it comes and learned (``learn(i, y)``)
    when its label comes, ``delay`` events later (River's simulate_qa): per-event correctness at
    prediction time, the time it took, and the accuracy of scoring each example again when its label
    comes, just before learning it (what a Headwater lane's prequential score measures)."""
    correct = np.zeros(len(s.y), dtype=bool)
    at_label = 0
    t0 = time.perf_counter()
    dataset: list[tuple[dict[Hashable, Any], Any]] = [({"i": i}, int(label)) for i, label in enumerate(s.y)]
    for _, x, y in stream.simulate_qa(dataset, moment=None, delay=delay, copy=False):
        i = int(x["i"])
        if y is None:
            correct[i] = predict(i) == s.y[i]
        else:
            at_label += predict(i) == y
            learn(i, int(y))
    return correct, time.perf_counter() - t0, at_label / len(s.y)


def alone(spec: LearnerSpec, s: Stream, delay: int) -> tuple[NDArray[np.bool_], float, float]:
    """The learner from `build_learner`, one row per call, with ``delay`` (`prequential`)."""
    learner = build_learner(spec, n_features=len(s.features), n_classes=2, feature_names=s.features)

    def predict(i: int) -> int:
        return int(np.argmax(learner.predict_proba(s.x[i : i + 1])[0]))

    def learn(i: int, y: int) -> None:
        learner.learn(s.x[i : i + 1], np.asarray([y], dtype=np.int64))

    return prequential(s, delay, predict, learn)


def capymoa_classifier(spec: LearnerSpec, features: list[str], n_classes: int) -> Any:
    """The CapyMOA classifier behind a MOA built-in, built as `learners.moa` builds it: its class on
    the schema `learners.moa` makes (numeric features, a nominal class of the indices), the spec's seed
    and parameters."""
    from learners.moa import _Jvm, moa_module

    cls = getattr(moa_module("capymoa.classifier"), MOA_CLASSES[spec.name])
    return cls(schema=_Jvm.get().capymoa_schema(features, n_classes), random_seed=spec.seed, **dict(spec.params))


def capymoa_alone(spec: LearnerSpec, s: Stream, delay: int) -> tuple[NDArray[np.bool_], float, float] | None:
    """For MOA learners, CapyMOA's classifier itself (not Headwater's wrapper) with ``delay``
    (`prequential`): ``predict_proba`` of a `capymoa.core.Instance` when the event comes, ``train`` on a
    `LabeledInstance` when its label does. No votes yet (None) predicts class 0, as the wrapper's
    uniform probabilities do."""
    if spec.name not in MOA_CLASSES:
        return None
    from learners.moa import moa_module

    model = capymoa_classifier(spec, s.features, 2)
    core = moa_module("capymoa.core")

    def predict(i: int) -> int:
        proba = model.predict_proba(core.Instance.from_array(model.schema, s.x[i]))
        return 0 if proba is None else int(np.argmax(proba))

    def learn(i: int, y: int) -> None:
        model.train(core.LabeledInstance.from_array(model.schema, s.x[i], y))

    return prequential(s, delay, predict, learn)


def river_pvs(spec: LearnerSpec, s: Stream, delay: int) -> NDArray[np.bool_] | None:
    """River's own progressive validation with delay, for learners that wrap a River model."""
    learner = build_learner(spec, n_features=len(s.features), n_classes=2, feature_names=s.features)
    if not isinstance(learner, RiverLearner):
        return None
    dataset: list[tuple[dict[Hashable, Any], Any]] = [
        (dict(zip(s.features, row, strict=True)), int(label)) for row, label in zip(s.x.tolist(), s.y, strict=True)
    ]
    steps = evaluate.iter_progressive_val_score(
        dataset, learner.model, metrics.Accuracy(), delay=delay, step=1, yield_predictions=True
    )
    preds = [step.get("Prediction") for step in steps]
    return np.asarray([p == y for p, y in zip(preds, s.y.tolist(), strict=True)], dtype=bool)


# -- Headwater ------------------------------------------------------------------------------------


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
    lanes: str = "thread"  # runtime.lanes of the served side with --gate refresh or live
    refresh_samples: int = 100
    live_wait_ms: float | None = None  # promotion.live_refresh_wait_ms with --gate live (None: the default)
    restart_on_drift: bool = False  # promotion.restart_on_drift on the served side
    quick: bool = field(default=False)
    stem: str = "parity"


def settings_for(p: Params, spec: LearnerSpec, s: Stream, topics: HeadwaterTopics, registry: Path) -> Settings:
    return load_settings(None, **settings_sections(p, spec, s, topics, registry))


def settings_sections(
    p: Params, spec: LearnerSpec, s: Stream, topics: HeadwaterTopics, registry: Path
) -> dict[str, dict[str, Any]]:
    """The daemon's settings as plain sections (they travel to the daemon's process)."""
    served = served_config(p)
    return dict(
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
        model={
            "learner": spec.name,
            "params": dict(spec.params),
            "seed": spec.seed,
            "candidates": served["candidates"],
        },
        promotion=served["promotion"],
        runtime=served["runtime"],
        batching={"max_wait_ms": p.max_wait_ms},
        registry={"path": str(registry)},
    )


def serve(sections: dict[str, dict[str, Any]], stop: Any, ready: Any, level: int) -> None:
    """The daemon's process: run until ``stop`` is set; ``ready`` is set once the flow is built and
    about to run (its start-up, the lane server's included, is over); both `multiprocessing.Event`s.
    Headwater's log at ``level``."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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


def headwater(p: Params, spec: LearnerSpec, s: Stream) -> dict[str, Any]:
    """The stream through a daemon serving ``spec``; per-event correctness of what it served, and its lanes."""
    topics = HeadwaterTopics.fresh("parity")
    create_topics(p, topics.all())
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
    read = Deadline(p.timeout_s, "reading back")
    preds = read_topic(p.bootstrap, topics.predictions, p.partitions, n, read)
    n_events = topic_size(p.bootstrap, topics.model_events, p.partitions)
    events = [
        orjson.loads(m.value() or b"{}")
        for m in read_topic(p.bootstrap, topics.model_events, p.partitions, n_events, read)
    ]
    served: dict[int, tuple[int, str]] = {}
    duplicates = 0
    routes: Counter[str] = Counter()
    for m in preds:
        body = orjson.loads(m.value() or b"{}")
        i = int(str(body["id"])[1:])
        if i in served:
            duplicates += 1
            continue
        served[i] = (int(body["prediction"]), str(body["version"]))
        routes[str(body["route"])] += 1
    correct = np.zeros(n, dtype=bool)
    for i, (pred, _) in served.items():
        correct[i] = pred == s.y[i]
    reports = [e for e in events if e.get("type") == "report"]
    lanes: dict[str, dict[str, Any]] = {}
    for r in reports:
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
    for lane in lanes.values():
        lane["accuracy"] = lane["correct"] / lane["labelled"] if lane["labelled"] else None
        lane["batch_mean"] = round(lane["labelled"] / lane["batches"], 1) if lane["batches"] else None
    versions = Counter(v for _, v in served.values())
    first_served: dict[str, int] = {}
    for i in sorted(served):
        first_served.setdefault(served[i][1], i)
    return {
        "first_served": first_served,  # version -> the first event it predicted
        "correct": correct,
        "served": len(served),
        "offered": n,
        "duplicates": duplicates,
        "dead_letters": topic_size(p.bootstrap, topics.dead_letters, p.partitions),
        "send_s": round(send_s, 2),
        "achieved_rate": round(n / send_s, 1),
        "lanes": lanes,
        "versions_served": len(versions),
        "routes": dict(routes),  # champion, or live: a refresh fork's copy (--gate live)
        "decisions": dict(Counter(str(e.get("action")) for e in events if e.get("type") == "decision")),
        "drift_verdicts": sum(1 for e in events if e.get("type") == "verdict" and e.get("evaluator") == "drift"),
    }


# -- one (learner, stream) ------------------------------------------------------------------------


def pts(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(100 * (a - b), 2)


WARMED: set[str] = set()
JIT_WARMUP_EVENTS = 5000


def jit_warmup(spec: LearnerSpec, s: Stream, seed: int) -> None:
    """Once per MOA learner and process, before its first Headwater side: a throwaway learner
    predicts and learns 5,000 events of the stream's generator with another seed, so that the JVM has
    compiled MOA's code before either side is measured (else the daemon, which runs first, would
    learn its first seconds in the interpreter and the alone sides with the compiled code)."""
    if spec.name not in MOA_CLASSES or spec.name in WARMED:
        return
    warm = STREAMS[s.name](JIT_WARMUP_EVENTS, seed + 1000)
    learner = build_learner(spec, n_features=len(warm.features), n_classes=2, feature_names=warm.features)
    for at in range(0, JIT_WARMUP_EVENTS, 100):
        learner.predict_proba(warm.x[at : at + 100])
        learner.learn(warm.x[at : at + 100], warm.y[at : at + 100])
    WARMED.add(spec.name)


def run_pair(p: Params, name: str, s: Stream) -> dict[str, Any]:
    spec = LEARNER_SPECS[name]
    jit_warmup(spec, s, p.seed)
    log.info("%s on %s: Headwater, %d events at %.0f/s", name, s.name, len(s.y), p.rate)
    hw = headwater(p, spec, s)
    log.info("%s on %s: alone", name, s.name)
    alone_correct, alone_s, alone_at_label = alone(spec, s, p.delay)
    pvs = river_pvs(spec, s, p.delay)
    if name in MOA_CLASSES:
        log.info("%s on %s: CapyMOA alone", name, s.name)
    capy = capymoa_alone(spec, s, p.delay)
    a = scores(alone_correct, s.changes, p.window, p.warmup)
    h = scores(hw.pop("correct"), s.changes, p.window, p.warmup)
    fork = hw["lanes"].get("fork", {})
    aw, hw_w = a["worst_window"], h["worst_window"]
    out = {
        "learner": name,
        "stream": s.name,
        "alone": a | {"seconds": round(alone_s, 1), "scored_at_label": alone_at_label},
        "river_pvs": None if pvs is None else scores(pvs, s.changes, p.window, p.warmup),
        "capymoa_alone": None,
        "headwater_served": h,
        "lane_prequential_overall": fork.get("accuracy"),
        "gap_served_overall_pts": pts(h["overall"], a["overall"]),
        "gap_lane_overall_pts": pts(fork.get("accuracy"), a["overall"]),
        "gap_lane_at_label_pts": pts(fork.get("accuracy"), alone_at_label),
        "gap_served_worst_pts": pts(hw_w and hw_w["accuracy"], aw and aw["accuracy"]),
        "headwater": hw,
    }
    if capy is not None:  # MOA: the reference is CapyMOA's classifier itself
        c_correct, c_s, c_at_label = capy
        c = scores(c_correct, s.changes, p.window, p.warmup)
        cw = c["worst_window"]
        out |= {
            "capymoa_alone": c | {"seconds": round(c_s, 1), "scored_at_label": c_at_label},
            "gap_alone_vs_capymoa_pts": pts(a["overall"], c["overall"]),  # the wrapper alone against CapyMOA
            "gap_served_vs_capymoa_overall_pts": pts(h["overall"], c["overall"]),
            "gap_served_vs_capymoa_worst_pts": pts(hw_w and hw_w["accuracy"], cw and cw["accuracy"]),
            "gap_lane_vs_capymoa_at_label_pts": pts(fork.get("accuracy"), c_at_label),
        }
    return out


# -- report ---------------------------------------------------------------------------------------


def f_pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def f_pts(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f}"


def f_rec(r: dict[str, Any]) -> str:
    if not r["recovery"]:
        return "-"
    return " / ".join("never" if x["events"] is None else f"{x['events']:,}" for x in r["recovery"])


def rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """The main table; the River pvs and CapyMOA alone columns only where some result has them."""
    pvs = any(r["river_pvs"] for r in results)
    capy = any(r.get("capymoa_alone") for r in results)
    out = [["learner", "stream", "alone", *(["River pvs"] if pvs else []), *(["CapyMOA alone"] if capy else []),
            "served", "gap served", "worst alone", "worst served", "gap worst", "recovery alone", "recovery served",
            "alone at label", "lane", "gap lane", "promotions"]]  # fmt: skip
    for r in results:
        a, h = r["alone"], r["headwater_served"]
        c = r.get("capymoa_alone")
        out.append([
            r["learner"], r["stream"], f_pct(a["overall"]),
            *([f_pct(r["river_pvs"]["overall"]) if r["river_pvs"] else "n/a"] if pvs else []),
            *([f_pct(c["overall"]) if c else "n/a"] if capy else []), f_pct(h["overall"]),
            f_pts(r["gap_served_overall_pts"]), f_pct(a["worst_window"] and a["worst_window"]["accuracy"]),
            f_pct(h["worst_window"] and h["worst_window"]["accuracy"]), f_pts(r["gap_served_worst_pts"]),
            f_rec(a), f_rec(h), f_pct(a["scored_at_label"]), f_pct(r["lane_prequential_overall"]),
            f_pts(r["gap_lane_at_label_pts"]), str(r["headwater"]["decisions"].get("promote", 0) - 1),
        ])  # fmt: skip
    return out


def moa_fails(r: dict[str, Any]) -> bool:
    """Issue 14's parity bar, against CapyMOA alone: at most 0.5 point below overall, 3 in the worst window."""
    return (r["gap_served_vs_capymoa_overall_pts"] or 0) < -0.5 or (r["gap_served_vs_capymoa_worst_pts"] or 0) < -3


def moa_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """MOA learners against CapyMOA's classifier alone (issue 14's reference)."""
    out = [["learner", "stream", "CapyMOA alone", "served", "gap served", "worst CapyMOA", "worst served",
            "gap worst", "recovery CapyMOA", "recovery served", "CapyMOA at label", "lane", "gap lane",
            "alone - CapyMOA", "bar"]]  # fmt: skip
    for r in results:
        c, h = r.get("capymoa_alone"), r["headwater_served"]
        if not c:
            continue
        out.append([
            r["learner"], r["stream"], f_pct(c["overall"]), f_pct(h["overall"]),
            f_pts(r["gap_served_vs_capymoa_overall_pts"]), f_pct(c["worst_window"] and c["worst_window"]["accuracy"]),
            f_pct(h["worst_window"] and h["worst_window"]["accuracy"]), f_pts(r["gap_served_vs_capymoa_worst_pts"]),
            f_rec(c), f_rec(h), f_pct(c["scored_at_label"]), f_pct(r["lane_prequential_overall"]),
            f_pts(r["gap_lane_vs_capymoa_at_label_pts"]), f_pts(r["gap_alone_vs_capymoa_pts"]),
            "no" if moa_fails(r) else "yes",
        ])  # fmt: skip
    return out


def ref_gaps(r: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """Served overall, served worst window and lane gaps against the pair's reference: CapyMOA alone
    for MOA learners, the learner alone otherwise."""
    via = "_vs_capymoa" if r.get("capymoa_alone") else ""
    return r[f"gap_served{via}_overall_pts"], r[f"gap_served{via}_worst_pts"], r[f"gap_lane{via}_at_label_pts"]


def verdicts(results: list[dict[str, Any]], gate: str = "shadow", max_wait_ms: float = 5.0) -> list[str]:
    """What the numbers say, from the numbers: issue 13's bar (0.5 point overall, 3 in the worst window)
    against the learner alone, and issue 14's, the same against CapyMOA alone, for MOA learners."""
    out = []
    built_in = [r for r in results if r["learner"] in BUILT_IN]
    moa = [r for r in results if r.get("capymoa_alone")]
    groups = [(built_in, "Issue 13's bar", "alone", "built-in learners"),
              (moa, "Issue 14's bar", "CapyMOA alone", "MOA learners, against CapyMOA's classifier alone")]  # fmt: skip
    for group, bar, ref, which in groups:
        if not group:
            continue
        fails = [r for r in group if (ref_gaps(r)[0] or 0) < -0.5 or (ref_gaps(r)[1] or 0) < -3]
        # "at least as well": better than the reference is no gap
        lane_fails = [r for r in group if ref_gaps(r)[2] is None or abs(ref_gaps(r)[2] or 0) > 0.5]
        out.append(
            f"- {bar} for the served predictions (at most 0.5 point below {ref} overall and 3 points in the worst "
            f"window, {which}): {len(group) - len(fails)} of {len(group)} (learner, stream) pairs meet it"
            + ("; " + ", ".join(f"{r['learner']} on {r['stream']} ({f_pts(ref_gaps(r)[0])} overall, "
                                f"{f_pts(ref_gaps(r)[1])} worst)" for r in fails) + " do not." if fails else ".")
        )  # fmt: skip
        out.append(
            "- The learner in its lane (independent of when it is promoted). A lane scores each example when its "
            "label arrives, just before learning it, not when it was served: with labels 200 events late that is a "
            f"model 200 events fresher than the one that predicted, so it is compared with {ref} scored the "
            f"same way ('{'CapyMOA' if ref != 'alone' else 'alone'} at label'), not with '{ref}': "
            f"{len(group) - len(lane_fails)} of {len(group)} pairs within 0.5 point of it"
            + ("; " + ", ".join(f"{r['learner']} on {r['stream']} ({f_pts(ref_gaps(r)[2])})" for r in lane_fails)
               + " are not." if lane_fails else ".")
        )  # fmt: skip
    if moa:
        apart = [r for r in moa if abs(r["gap_alone_vs_capymoa_pts"] or 0) > 0]
        out.append(
            "- Headwater's MOA wrapper alone (one event per call, through the bridge) against CapyMOA's classifier "
            "alone, same seed, same delay: "
            + ("the same accuracy to the last example on every pair." if not apart else
               ", ".join(f"{r['learner']} on {r['stream']} ({f_pts(r['gap_alone_vs_capymoa_pts'])})" for r in apart)
               + f"; {len(moa) - len(apart)} of {len(moa)} pairs identical.")
        )  # fmt: skip
        lagging = [r for r in moa if r["headwater"]["lanes"].get("fork", {}).get("lag_max", 0) > 2]
        if lagging:
            out.append(
                "- The fork's lane was at times more than 2 batches behind the input (it never skips here; the "
                "served model is then older by as much): "
                + ", ".join(f"{r['learner']} on {r['stream']} (backlog up to "
                            f"{r['headwater']['lanes']['fork']['lag_max']} batches)" for r in lagging) + "."
            )  # fmt: skip
    served_behind = [r for r in results if (ref_gaps(r)[0] or 0) < (ref_gaps(r)[2] or 0) - 0.5]
    if served_behind:
        out.append(
            (
                "- Where the served gap is larger than the lane's, the served model is older than the learner: a "
                "frozen snapshot of the fork, replaced each time the fork has been not worse over "
                "`refresh_samples` paired examples (each promotion counted in the table), so it predicts with "
                "what the fork knew one refresh, plus the time a label takes through the pipeline (a micro-batch, "
                "the join, the lane, the train step's next look at its results, the board), before. Overall "
                "accuracy counts from event 0: the untrained first champion serves until the first refresh, "
                "some 300 events after the first label; alone learns from the first label on: "
                if gate == "refresh"
                else "- Where the served gap is larger than the lane's, the served model is older than the learner: "
                "the fork's state as of the last batch the lane handed to serving (after every batch it learns, "
                "as its copy budget allows; from a process lane, as far as its process has learned when asked), "
                "plus the time a label takes through the pipeline (a "
                "micro-batch, the join, the lane); the champion serves whenever the fork's running trial "
                "shows it more than `refresh_margin` below the champion (the routes in Runs): "
                if gate == "live"
                else "- Where the served gap is larger than the lane's, the difference is promotion: the served "
                "model is a frozen snapshot that is replaced only when the fork is significantly better on paired "
                "evidence (each promotion counted in the table), so between promotions serving does not get the "
                "fork's recent learning: "
            )
            + ", ".join(f"{r['learner']} on {r['stream']} ({f_pts(ref_gaps(r)[0])} served vs "
                        f"{f_pts(ref_gaps(r)[2])} lane)" for r in served_behind) + "."
        )  # fmt: skip
    lane_apart = [r for r in results if abs(ref_gaps(r)[2] or 0) > 0.5]
    if lane_apart:
        out.append(
            "- Where the lane itself is apart from its reference (either way), the learner learns differently behind "
            "Headwater than one row at a time: it is handed a micro-batch per call (torch-mlp takes one optimiser "
            "step per `minibatch` events of it, in order, where alone it takes one per event; River and MOA "
            "learners learn event by event within the batch, as alone), it is re-forked "
            "from the champion after a refused trial without live refresh or after failing the golden set "
            "(losing what it learned since: `refuse` in the decisions below), or it skipped batches (none here: "
            "`skipped` in the JSON). And a lane scores a whole job "
            "before it learns any of it: the larger the jobs, the older the model that scores their last examples. "
            f"Jobs grow when the serving thread has more to do than the {max_wait_ms:g} ms a micro-batch waits "
            "allow (the GIL is "
            "shared by serving, the champion's lane and the fork's): labelled examples per job in brackets: "
            + ", ".join(
                f"{r['learner']} on {r['stream']} ({f_pts(ref_gaps(r)[2])}; "
                f"{r['headwater']['lanes'].get('fork', {}).get('batch_mean')})"
                for r in lane_apart
            )
            + "."
        )
    return out


def moa_versions(machine: dict[str, Any]) -> dict[str, Any]:
    """CapyMOA's version, and the JVM's (started by now, if a MOA learner ran), for the report."""
    out: dict[str, Any] = {"capymoa": dist_version("capymoa"), "java": None}
    try:
        import jpype

        if jpype.isJVMStarted():
            system = jpype.JClass("java.lang.System")
            out["java"] = f"{system.getProperty('java.vm.name')} {system.getProperty('java.version')}"
    except ImportError:
        pass
    return out


def moa_versions_text(m: dict[str, Any]) -> str:
    return f", CapyMOA {m['capymoa']} on {m['java']}" if m.get("java") else ""


def render_markdown(report: dict[str, Any]) -> str:
    p, m, results = report["params"], report["machine"], report["results"]
    md = ["# Parity: a learner behind Headwater against the same learner alone", ""]
    md.append(
        f"Measured on {m['cpu_count']} CPU(s) ({m['cpu_model']}), Python {m['python']}, Apache Kafka "
        f"{m['kafka_version']} (single local broker), Bytewax {m['bytewax']}, River {m['river']}, torch "
        f"{m['torch']}{moa_versions_text(m)}; headwater commit {m['headwater_commit']}"
        f"{' with uncommitted changes' if m.get('headwater_dirty') else ''}. Produced by `python -m bench.parity"
        f"{' ' + ' '.join(report['argv']) if report['argv'] else ''}` in {report['total_s']:.0f} s; load average "
        f"{' / '.join(map(str, m['load_average_at_start']))} at the start. {p['events']:,} events per stream at "
        f"{p['rate']:,.0f}/s, labels {p['delay']} events late on their own topic; worst window {p['window']:,} "
        f"events after a {p['warmup']:,}-event warm-up."
    )
    md += ["", *render_markdown_table(rows(results)), ""]
    moa = moa_rows(results)
    if len(moa) > 1:
        md += ["Against CapyMOA's classifier alone (MOA learners, issue 14):", "", *render_markdown_table(moa), ""]
    md.append(
        "Accuracies in %, gaps in points (Headwater - alone). *alone*: the learner fed one event at a time with "
        "the same delay (`river.stream.simulate_qa`); *River pvs*: `river.evaluate.progressive_val_score` with "
        "the same delay, on River models; *served*: every prediction the daemon served, read back from Kafka; "
        "*lane*: the fork's own prequential accuracy, from its `report` records (scored when the label arrives), "
        "next to *alone at label*, the alone side scored the same way; *gap lane*: lane - alone at label; "
        "*CapyMOA alone* (MOA learners): CapyMOA's classifier itself, built as `learners.moa` builds it (same "
        "class, schema, seed and parameters), fed one event at a time with the same delay; *alone - CapyMOA*: "
        "Headwater's wrapper alone against it; *bar*: within 0.5 point of CapyMOA alone overall and 3 in the worst "
        "window; "
        "overall from event 0; recovery: "
        "events after each abrupt change until a 1,000-event window is within 2 points of the level the "
        "accuracy settles at (module docstring); promotions: fork promotions after the first champion."
    )
    says = verdicts(results, p.get("gate", "shadow"), p.get("max_wait_ms", 20.0))
    md += ["", "## What the numbers say", "", *says, ""]
    md += ["## Headwater's configuration for the served side", ""]
    served = p["served_config"]
    md.append(
        "The champion serves and never learns; candidates learn. Here one fork (the champion's state, learning "
        f"on, forked again from each new champion) in a {served['runtime']['lanes']} lane that never skips a batch: "
        f"`model.candidates: {json.dumps(served['candidates'])}`, `promotion: {json.dumps(served['promotion'])}`, "
        f"`runtime: {json.dumps(served['runtime'])}`, micro-batches of at most 512 records or "
        f"{p.get('max_wait_ms', 20.0):g} ms. "
        + (
            "With `gate: refresh` the fork replaces the champion as soon as it is not worse than it over "
            "`refresh_samples` paired examples (`evaluators.RefreshEvaluator`), so the served model is at most "
            "about that many labelled examples behind the learner."
            if p.get("gate", "shadow") == "refresh"
            else "With live refresh (`gate: refresh`, `promotion.live_refresh: true`) the fork's lane also hands its "
            "model's state to serving after the batches it learns (a copy, or for a model slower to copy than to "
            "teach two replicas that catch up in turn: `dataflows/live.py`; from a process lane nothing is handed "
            "over: serving asks the fork's process, which answers with the model it is teaching, "
            "`dataflows/process_lane.py`), which serves in place of the champion "
            "while the fork's refresh trial shows it not worse (`RefreshEvaluator.may_serve`; a refused fork "
            "learns on and serves again once 30 examples of its new trial show it so, also while it waits to be "
            "judged again); "
            "promotions go on as with `gate: refresh`, every `refresh_samples` paired examples."
            if p.get("gate", "shadow") == "live"
            else "With the shadow gate, even at its most permissive, a promotion needs the fork to be "
            "*significantly* better than the frozen champion (the confidence sequence's lower bound above 0), so "
            "in a stable stretch the champion falls behind the fork until the difference is large enough to show."
        )
    )
    md += ["", "## Streams", ""]
    md += [f"- `{name}`: {d}" for name, d in report["streams"].items()]
    md += ["", "## Runs", ""]
    for r in results:
        hw = r["headwater"]
        fork = hw["lanes"].get("fork", {})
        md.append(
            f"- {r['learner']} on {r['stream']}: {hw['served']:,} of {hw['offered']:,} events served "
            f"({hw['duplicates']} duplicates, {hw['dead_letters']} dead letters), sent at {hw['achieved_rate']:,.0f} "
            f"events/s; {hw['versions_served']} versions served"
            + (f" (by route: {hw['routes']})" if "live" in hw.get("routes", {}) else "")
            + f"; decisions {hw['decisions']}; drift verdicts "
            f"{hw['drift_verdicts']}; fork: {fork.get('labelled', 0):,} labelled scored, {fork.get('learned', 0):,} "
            f"learned, {fork.get('skipped', 0)} batches skipped, lag at most {fork.get('lag_max', 0)}"
            + (
                f", {fork['batch_mean']} labelled examples per job (at most {fork['batch_max']})"
                if fork.get("batch_mean")
                else ""
            )
            + "; alone took "
            f"{r['alone']['seconds']} s"
            + (f", CapyMOA alone {r['capymoa_alone']['seconds']} s." if r.get("capymoa_alone") else ".")
        )
    md.append("")
    return "\n".join(md)


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Params:
    parser = argparse.ArgumentParser(
        prog="python -m bench.parity",
        description="A learner behind Headwater (through the broker) against the same learner alone, same stream.",
    )
    add = parser.add_argument
    add("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    add("--events", type=int, default=30_000, help="events per stream")
    add("--rate", type=float, default=3000.0, help="events/s sent to Headwater")
    add("--delay", type=int, default=200, help="a label comes this many events after its event")
    add("--window", type=int, default=2000, help="events in the worst window")
    add("--warmup", type=int, default=5000, help="worst windows start at or after this event")
    add(
        "--learners",
        default=",".join(DEFAULT_LEARNERS),
        help=f"comma-separated, of {', '.join(LEARNER_SPECS)}; 'moa' for {', '.join(MOA_LEARNERS)}",
    )
    add("--streams", default=",".join(STREAMS), help=f"comma-separated, of {', '.join(STREAMS)}")
    add("--partitions", type=int, default=1, help="partitions of every fresh topic (1 keeps the stream's order)")
    add("--seed", type=int, default=42, help="seed of the generators")
    add("--timeout", type=float, default=120.0, help="bound on every wait of a run, seconds")
    add(
        "--gate", choices=("refresh", "live", "shadow"), default="refresh",
        help="the fork's gate on the served side (live: refresh with promotion.live_refresh)",
    )  # fmt: skip
    add("--refresh-samples", type=int, default=100, help="promotion.refresh_samples with --gate refresh")
    add(
        "--live-wait-ms", type=float, default=None,
        help="promotion.live_refresh_wait_ms with --gate live (default: the daemon's)",
    )  # fmt: skip
    add(
        "--lanes", choices=("thread", "process"), default="thread",
        help="runtime.lanes with --gate refresh or live (process: the fork learns, and with live serves, in a process)",
    )  # fmt: skip
    add("--restart-on-drift", action="store_true", help="promotion.restart_on_drift on the served side")
    add("--max-wait-ms", type=float, default=5.0, help="batching.max_wait_ms of the daemon")
    add("--quick", action="store_true", help="a smoke run: 12,000 events, warm-up 3,000")
    add("--keep-topics", action="store_true", help="do not delete the benchmark's topics")
    add("--out-dir", type=Path, default=RESULTS, help="where the JSON and Markdown go")
    add("--stem", default=None, help="file name of the results (default: parity-moa with a MOA learner, else parity)")
    a = parser.parse_args(argv)
    named = [x.strip() for x in a.learners.split(",") if x.strip()]
    learners = tuple(dict.fromkeys(y for x in named for y in (MOA_LEARNERS if x == "moa" else (x,))))
    streams = tuple(x.strip() for x in a.streams.split(",") if x.strip())
    if not learners or set(learners) - set(LEARNER_SPECS):
        parser.error(f"--learners takes some of {', '.join(LEARNER_SPECS)}")
    if not streams or set(streams) - set(STREAMS):
        parser.error(f"--streams takes some of {', '.join(STREAMS)}")
    events, warmup = (12_000, 3000) if a.quick else (a.events, a.warmup)
    if a.rate <= 0 or a.delay < 0 or a.window < 1 or warmup < 0 or events < warmup + a.window:
        parser.error("--rate must be positive, --delay >= 0, and --events >= --warmup + --window")
    return Params(
        bootstrap=a.bootstrap, events=events, rate=a.rate, delay=a.delay, window=a.window, warmup=warmup,
        learners=learners, streams=streams, partitions=a.partitions, seed=a.seed, timeout_s=a.timeout,
        keep_topics=a.keep_topics, out_dir=a.out_dir, gate=a.gate, refresh_samples=a.refresh_samples,
        live_wait_ms=a.live_wait_ms, restart_on_drift=a.restart_on_drift, max_wait_ms=a.max_wait_ms, quick=a.quick,
        lanes=a.lanes,
        stem=a.stem or ("parity-moa" if set(learners) & set(MOA_CLASSES) else "parity"),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    args = sys.argv[1:] if argv is None else argv
    p = parse_args(args)
    started = time.perf_counter()
    machine = machine_info(p)
    if "torch-mlp" in p.learners:
        import torch

        torch.set_num_threads(1)  # as the daemon does (runtime.torch_threads)
    results: list[dict[str, Any]] = []
    streams: dict[str, str] = {}
    try:
        for stream_name in p.streams:
            s = STREAMS[stream_name](p.events, p.seed)
            streams[s.name] = s.description
            for name in p.learners:
                results.append(run_pair(p, name, s))
                print(render_text(rows(results[-1:])), flush=True)
    finally:
        if not p.keep_topics:
            delete_topics(p.bootstrap, CREATED)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(p).items()}
    params |= {"served_config": served_config(p), "learner_specs": {k: asdict(v) for k, v in LEARNER_SPECS.items()}}
    machine |= moa_versions(machine)
    report = {"params": params, "argv": args, "machine": machine, "streams": streams, "results": results,
              "total_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    print(render_text(rows(results)))
    if len(moa_rows(results)) > 1:
        print("\n" + render_text(moa_rows(results)))
    p.out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = p.out_dir / f"{p.stem}.json", p.out_dir / f"{p.stem}.md"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    md_path.write_text(render_markdown(report))
    print(f"\nwrote {json_path} and {md_path} in {report['total_s']:.0f} s")
    missing = [
        f"{r['learner']} on {r['stream']}" for r in results if r["headwater"]["served"] != r["headwater"]["offered"]
    ]
    if missing:
        print(f"not every event was served: {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(2)
