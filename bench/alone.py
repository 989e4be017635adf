"""A learner alone, outside Headwater: the references the benchmarks hold Headwater's numbers against.

- `learner_alone`: the learner `learners.build_learner` builds, fed one event at a time in memory,
  each label ``delay`` events after its event (`prequential`, River's `river.stream.simulate_qa`);
- `river_pvs`: River's own progressive validation with the same delay, for a learner that wraps a
  River model (a check of `prequential`);
- `capymoa_alone`: for a MOA built-in, CapyMOA's classifier itself (`capymoa_classifier`, built as
  `learners.moa` builds it), fed the same way; `capymoa_api` is its predict + train loop;
- the ways to call a MOA learner without a daemon (`per_event` JPype calls, the `batched` bridge),
  a model grown on a stream (`grown`), and a JIT warm-up (`jit_warmup`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river import evaluate, metrics, stream

from bench.broker import BenchError
from bench.streams import LEARNER_SPECS, MOA_CLASSES, STREAMS, FloatArray, IntArray, Stream
from learners import Learner, LearnerSpec, RiverLearner, build_learner
from learners.moa import MoaLearner, moa_module

__all__ = [
    "JIT_WARMUP_EVENTS",
    "batched",
    "build_on",
    "capymoa_alone",
    "capymoa_api",
    "capymoa_classifier",
    "grown",
    "jit_warmup",
    "learner_alone",
    "moa_learner",
    "per_event",
    "prequential",
    "river_pvs",
]

Correct = NDArray[np.bool_]
JIT_WARMUP_EVENTS = 5000


def build_on(spec: LearnerSpec, s: Stream) -> Learner:
    """``spec`` built for ``s``: its features, two classes."""
    return build_learner(spec, n_features=len(s.features), n_classes=2, feature_names=s.features)


def grown(name: str, s: Stream, events: int, batch: int = 60) -> Learner:
    """``LEARNER_SPECS[name]`` after learning the first ``events`` events of ``s``, ``batch`` at a time."""
    learner = build_on(LEARNER_SPECS[name], s)
    for start in range(0, events, batch):
        stop = min(start + batch, events)
        learner.learn(s.x[start:stop], s.y[start:stop].astype(np.int64))
    return learner


def prequential(
    s: Stream, delay: int, predict: Callable[[int], int], learn: Callable[[int, int], None]
) -> tuple[Correct, float, float]:
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


def learner_alone(spec: LearnerSpec, s: Stream, delay: int) -> tuple[Correct, float, float]:
    """The learner from `build_learner`, one row per call, with ``delay`` (`prequential`)."""
    learner = build_on(spec, s)

    def predict(i: int) -> int:
        return int(np.argmax(learner.predict_proba(s.x[i : i + 1])[0]))

    def learn(i: int, y: int) -> None:
        learner.learn(s.x[i : i + 1], np.asarray([y], dtype=np.int64))

    return prequential(s, delay, predict, learn)


def river_pvs(spec: LearnerSpec, s: Stream, delay: int) -> Correct | None:
    """River's own progressive validation with delay, for learners that wrap a River model."""
    learner = build_on(spec, s)
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


# -- MOA ------------------------------------------------------------------------------------------


def capymoa_classifier(spec: LearnerSpec, features: list[str], n_classes: int) -> Any:
    """The CapyMOA classifier behind a MOA built-in, built as `learners.moa` builds it: its class on
    the schema `learners.moa` makes (numeric features, a nominal class of the indices), the spec's seed
    and parameters."""
    from learners.moa import _Jvm

    cls = getattr(moa_module("capymoa.classifier"), MOA_CLASSES[spec.name])
    return cls(schema=_Jvm.get().capymoa_schema(features, n_classes), random_seed=spec.seed, **dict(spec.params))


def capymoa_alone(spec: LearnerSpec, s: Stream, delay: int) -> tuple[Correct, float, float] | None:
    """For MOA learners, CapyMOA's classifier itself (not Headwater's wrapper) with ``delay``
    (`prequential`): ``predict_proba`` of a `capymoa.core.Instance` when the event comes, ``train`` on a
    `LabeledInstance` when its label does. No votes yet (None) predicts class 0, as the wrapper's
    uniform probabilities do."""
    if spec.name not in MOA_CLASSES:
        return None
    model = capymoa_classifier(spec, s.features, 2)
    core = moa_module("capymoa.core")

    def predict(i: int) -> int:
        proba = model.predict_proba(core.Instance.from_array(model.schema, s.x[i]))
        return 0 if proba is None else int(np.argmax(proba))

    def learn(i: int, y: int) -> None:
        model.train(core.LabeledInstance.from_array(model.schema, s.x[i], y))

    return prequential(s, delay, predict, learn)


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


def moa_learner(spec: LearnerSpec, s: Stream) -> MoaLearner:
    learner = build_on(spec, s)
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


def batched(learner: Learner, x: FloatArray, y: IntArray, batch: int) -> None:
    """Predict, then learn, ``batch`` events at a time (Headwater's way of calling a learner)."""
    for at in range(0, len(y), batch):
        learner.predict_proba(x[at : at + batch])
        learner.learn(x[at : at + batch], y[at : at + batch])


WARMED: set[str] = set()


def jit_warmup(spec: LearnerSpec, s: Stream, seed: int) -> None:
    """Once per MOA learner and process, before its first Headwater side: a throwaway learner
    predicts and learns 5,000 events of the stream's generator with another seed, so that the JVM has
    compiled MOA's code before either side is measured (else the daemon, which runs first, would
    learn its first seconds in the interpreter and the alone sides with the compiled code)."""
    if spec.name not in MOA_CLASSES or spec.name in WARMED:
        return
    warm = STREAMS[s.name](JIT_WARMUP_EVENTS, seed + 1000)
    batched(build_on(spec, warm), warm.x, warm.y, 100)
    WARMED.add(spec.name)
