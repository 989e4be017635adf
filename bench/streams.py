"""The streams and learners the learning benchmarks share: River's seeded synthetic generators as
in-memory arrays (`STREAMS`: two classes, numeric features, the abrupt changes after which recovery is
measured), and the learner specs they are run with (`LEARNER_SPECS`).

`bench.parity` runs every (learner, stream) pair behind Headwater and alone; `bench.moa`,
`bench.copies`, `bench.live_ask` and `bench.torch_steps` take their events from the same generators,
so that their numbers speak of the same data::

    s = STREAMS["rbf"](30_000, 42)      # s.x: (30000, 10) floats, s.y: 0 or 1
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river.datasets import synth

from learners import LearnerSpec

__all__ = [
    "BUILT_IN",
    "DEFAULT_LEARNERS",
    "LEARNER_SPECS",
    "MOA_CLASSES",
    "MOA_LEARNERS",
    "STREAMS",
    "FloatArray",
    "IntArray",
    "Stream",
    "agrawal",
    "hyperplane",
    "rbf",
    "stagger",
    "take",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

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


# -- streams ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    name: str
    description: str
    x: FloatArray
    y: IntArray
    features: list[str]
    changes: list[int]  # abrupt changes after which recovery is measured
    truth: IntArray | None = None  # the labels before some were flipped (``y`` is what is sent)
    burst: tuple[int, int] | None = None  # the events whose labels were flipped: [start, end)


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
    truth = np.asarray(y, dtype=np.int64)
    labels = truth.copy()
    start, end = int(0.4 * n), int(0.5 * n)
    flip = np.random.default_rng(seed).random(end - start) < 0.35
    labels[start:end] = np.where(flip, 1 - labels[start:end], labels[start:end])
    desc = (f"Agrawal function 0 (numeric; categoricals as their codes), 35 % of labels flipped in events "
            f"[{start:,}, {end:,}): a label-flip burst; recovery measured from its end")  # fmt: skip
    return Stream("agrawal", desc, x, labels, names, [end], truth=truth, burst=(start, end))


STREAMS: dict[str, Callable[[int, int], Stream]] = {
    "hyperplane": hyperplane,
    "rbf": rbf,
    "stagger": stagger,
    "agrawal": agrawal,
}


def take(s: Stream, n: int) -> Stream:
    """The first ``n`` events of ``s``."""
    return Stream(s.name, s.description, s.x[:n], s.y[:n], s.features, [c for c in s.changes if c < n])
