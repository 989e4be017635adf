"""Shared pieces for the serve / lanes / train / gate tests: a fake clock, records, streams with a
known concept, a group wired to real collaborators, and learners that fail or wait on demand."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import numpy as np
from bytewax.testing import TestingSink, TestingSource

from daemon.wiring import local_deps
from dataflows.config import CandidateSpec, FlowConfig, GateSpec, GoldenSet, Topics
from dataflows.decode import FeatureSchema
from dataflows.flow import FlowDeps, install_champion
from dataflows.ports import NullMetrics
from dataflows.records import (
    DeadLetter,
    DecisionRecord,
    Event,
    Label,
    ModelReport,
    SourceRef,
    VerdictRecord,
)
from dataflows.serve import Served, ServeOut, ServingTable, serve_batch
from dataflows.train import TrainContext, TrainLogic, TrainOutput, new_group_state
from learners import Artifact, Learner, LearnerSpec, build_learner
from learners.base import FloatArray, IntArray

GROUP = "default"
CLASSES: list[int | str] = ["neg", "pos"]
FEATURES = ["a", "b"]
SCHEMA = FeatureSchema(FEATURES, CLASSES)
LOGREG = LearnerSpec("river-logreg")

T = TypeVar("T")


class FakeClock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- records -----------------------------------------------------------------------------------


def event(event_id: str, x: Sequence[float], label: int | None = None, offset: int = 0, partition: int = 0) -> Event:
    return Event(event_id, list(x), label, SourceRef("events", partition, offset, 500 + offset))


def label(event_id: str, y: int, offset: int = 0) -> Label:
    original = f'{{"id": "{event_id}", "label": {y}}}'.encode()
    return Label(event_id, y, SourceRef("labels", 0, offset, 700 + offset), original)


def of_type(out: Iterable[object], kind: type[T]) -> list[T]:
    return [o for o in out if isinstance(o, kind)]


def reports(out: Iterable[object], model: str | None = None) -> list[ModelReport]:
    return [r for r in of_type(out, ModelReport) if model is None or r.model == model]


def decisions(out: Iterable[object]) -> list[DecisionRecord]:
    return of_type(out, DecisionRecord)


def verdicts(out: Iterable[object]) -> list[VerdictRecord]:
    return of_type(out, VerdictRecord)


def dead(out: Iterable[object]) -> list[DeadLetter]:
    return of_type(out, DeadLetter)


# -- streams -------------------------------------------------------------------------------------

Concept = Callable[[np.ndarray], np.ndarray]


def concept_a(x: np.ndarray) -> np.ndarray:
    """Positive iff the first feature is positive."""
    y: np.ndarray = (x[:, 0] > 0).astype(np.int64)
    return y


def concept_b(x: np.ndarray) -> np.ndarray:
    """Concept A flipped."""
    return 1 - concept_a(x)


def concept_poisoned(x: np.ndarray) -> np.ndarray:
    """Concept A with the labels of two 45-degree wedges (a quarter of the plane) flipped: where
    ``a`` and ``a + b`` disagree in sign. Linear again, so a model learns it cleanly."""
    y: np.ndarray = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return y


class Stream:
    """Labelled events with unique ids and consecutive offsets on ``events/0``."""

    def __init__(self, seed: int = 0, concept: Concept = concept_a) -> None:
        self.rng = np.random.default_rng(seed)
        self.concept = concept
        self.offset = 0

    def arrays(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = self.rng.normal(0.0, 1.0, size=(n, len(FEATURES)))
        return x, self.concept(x)

    def batch(self, n: int, *, labelled: bool = True) -> list[Event | Label]:
        x, y = self.arrays(n)
        out: list[Event | Label] = []
        for row, target in zip(x.tolist(), y.tolist(), strict=True):
            out.append(event(f"e{self.offset}", row, int(target) if labelled else None, offset=self.offset))
            self.offset += 1
        return out


def trained_learner(
    spec: LearnerSpec = LOGREG, concept: Concept = concept_a, n: int = 2_000, seed: int = 99
) -> Learner:
    learner = build_learner(spec, n_features=len(FEATURES), n_classes=len(CLASSES), feature_names=FEATURES)
    x, y = Stream(seed, concept).arrays(n)
    for start in range(0, n, 100):
        learner.learn(x[start : start + 100], y[start : start + 100])
    return learner


# -- a group on real collaborators -----------------------------------------------------------------


def config(
    *,
    candidates: tuple[CandidateSpec, ...] = (CandidateSpec("fork"),),
    learner: LearnerSpec = LOGREG,
    golden: GoldenSet | None = None,
    labels_topic: bool = True,
    label_window_s: float = 300.0,
    max_pending: int = 100_000,
    rolling_window: int = 1000,
    **gate: Any,
) -> FlowConfig:
    """A group of two features; the gate is inline (``threaded=False``) and quick unless told otherwise."""
    gate_spec = GateSpec(**({"threaded": False, "min_samples": 200, "probation_samples": 400} | gate))
    return FlowConfig(
        brokers="unused:9092",
        topics=Topics(
            "events",
            "predictions",
            "dead-letters",
            "model-events",
            "labels" if labels_topic else None,
            control="control",
        ),
        schema=SCHEMA,
        learner=learner,
        candidates=candidates,
        gate=gate_spec,
        golden=golden,
        label_window_s=label_window_s,
        max_pending=max_pending,
        rolling_window=rolling_window,
        recovery=True,  # snapshots are made (and tested)
        lineage_flush_s=0.0,  # the registry is up to date after every step
    )


@dataclass
class Group:
    """One group's serve and train steps, wired as `build_flow` wires them, run by hand."""

    config: FlowConfig
    deps: FlowDeps
    clock: FakeClock
    logic: TrainLogic

    @property
    def table(self) -> ServingTable:
        return self.deps.board.current(self.config.group)

    def serve(self, batch: list[Event | Label]) -> ServeOut:
        return serve_batch(self.table, batch, list(self.config.schema.classes), self.clock())

    def step(self, batch: list[Event | Label]) -> tuple[ServeOut, list[TrainOutput]]:
        """Serve a micro-batch, then train on it (the flow's serve__predict then train__learn)."""
        served = self.serve(batch)
        out, _ = self.logic.on_item(served.batch)
        return served, list(out)

    def run(self, stream: Stream, batches: int, size: int = 50, tick: float = 1.0) -> list[TrainOutput]:
        out: list[TrainOutput] = []
        for _ in range(batches):
            out.extend(self.step(stream.batch(size))[1])
            self.clock.t += tick
        return out


def context(cfg: FlowConfig, deps: FlowDeps, *, drain_on_eof: bool = True) -> TrainContext:
    return TrainContext(
        cfg, deps.registry, deps.promoter, NullMetrics(), deps.clock,
        drain_on_eof=drain_on_eof, delayed_labels=cfg.topics.labels is not None, board=deps.board,
    )  # fmt: skip


def make_group(
    cfg: FlowConfig,
    directory: Path,
    *,
    clock: FakeClock | None = None,
    champion: Learner | None = None,
    drain_on_eof: bool = True,
) -> Group:
    """The group's champion installed (``champion`` if given, else the configured learner, untrained),
    its train step built around it."""
    clock = clock if clock is not None else FakeClock()
    deps = local_deps(TestingSource([]), TestingSink([]), directory, clock=clock)
    if champion is None:
        install_champion(cfg, deps)
    else:
        install_trained(cfg, deps, champion)
    ctx = context(cfg, deps, drain_on_eof=drain_on_eof)
    logic = TrainLogic(new_group_state(ctx), ctx)
    return Group(cfg, deps, clock, logic)


def install_trained(cfg: FlowConfig, deps: FlowDeps, learner: Learner) -> str:
    """A champion that already knows something, registered and serving as the group's first version."""
    now_ms = int(deps.clock() * 1000)
    info = deps.registry.create_version(
        cfg.group, name="champion", parent=None, learner=learner, config={}, ts_ms=now_ms
    )
    deps.promoter.install(cfg.group, version=info.id, learner=learner, reason="pretrained for a test", ts_ms=now_ms)
    return info.id


def table_with(champion: Learner, canary: Learner | None = None, share: float = 0.0) -> ServingTable:
    return ServingTable(
        GROUP, Served(f"{GROUP}/1", champion), None if canary is None else Served(f"{GROUP}/2", canary), share
    )


# -- learners that misbehave on demand ----------------------------------------------------------------


class Wrapped:
    """A learner around another one; subclasses change one thing."""

    def __init__(self, inner: Learner) -> None:
        self.inner = inner
        self.n_features = inner.n_features
        self.n_classes = inner.n_classes

    def predict_proba(self, x: FloatArray) -> FloatArray:
        return self.inner.predict_proba(x)

    def learn(self, x: FloatArray, y: IntArray) -> None:
        self.inner.learn(x, y)

    def clone(self, *, include_state: bool = False) -> Self:
        copied = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied.inner = self.inner.clone(include_state=include_state)
        return copied

    def save(self, directory: Path) -> Artifact:
        return self.inner.save(directory)

    @classmethod
    def load(cls, artifact: Artifact) -> Self:
        msg = "test learners are not loaded from checkpoints"
        raise NotImplementedError(msg)


class Broken(Wrapped):
    """Fails on demand: raises in predict or learn, returns NaN, or returns one row too few."""

    def __init__(
        self, inner: Learner, *, predict: bool = False, learn: bool = False, nan: bool = False, short: bool = False
    ) -> None:
        super().__init__(inner)
        self.fail_predict, self.fail_learn, self.nan, self.short = predict, learn, nan, short

    def predict_proba(self, x: FloatArray) -> FloatArray:
        if self.fail_predict:
            msg = "boom"
            raise RuntimeError(msg)
        p = np.array(self.inner.predict_proba(x))
        if self.nan:
            p[0] = np.nan
        if self.short:
            p = p[1:]
        return p

    def learn(self, x: FloatArray, y: IntArray) -> None:
        if self.fail_learn:
            msg = "math range error"
            raise OverflowError(msg)
        self.inner.learn(x, y)


class Gated(Wrapped):
    """``learn`` says it started (``entered``), then waits for ``gate``: a model that is slow on demand.

    The wait is bounded: a gate never opened fails the learn loudly instead of hanging the suite.
    """

    def __init__(self, inner: Learner, gate: threading.Event, entered: threading.Event, limit_s: float = 10.0) -> None:
        super().__init__(inner)
        self.gate, self.entered, self.limit_s = gate, entered, limit_s

    def learn(self, x: FloatArray, y: IntArray) -> None:
        self.entered.set()
        if not self.gate.wait(self.limit_s):
            msg = f"the test never opened the gate within {self.limit_s} s"
            raise TimeoutError(msg)
        self.inner.learn(x, y)


class Memo:
    """Remembers every (x, y) it learned and predicts it with certainty; uniform on anything new."""

    def __init__(self, n_features: int = 2, n_classes: int = 2) -> None:
        self.n_features, self.n_classes = n_features, n_classes
        self.seen: dict[tuple[float, ...], int] = {}
        self.history: list[tuple[float, ...]] = []  # every row learned, in order (twice if taught twice)

    def predict_proba(self, x: FloatArray) -> FloatArray:
        out = np.full((len(x), self.n_classes), 1.0 / self.n_classes)
        for i, row in enumerate(x.tolist()):
            known = self.seen.get(tuple(row))
            if known is not None:
                out[i] = 0.0
                out[i, known] = 1.0
        return out

    def learn(self, x: FloatArray, y: IntArray) -> None:
        for row, target in zip(x.tolist(), y.tolist(), strict=True):
            self.seen[tuple(row)] = int(target)
            self.history.append(tuple(row))

    def clone(self, *, include_state: bool = False) -> Self:
        copied = type(self)(self.n_features, self.n_classes)
        if include_state:
            copied.seen = dict(self.seen)
            copied.history = list(self.history)
        return copied

    def save(self, directory: Path) -> Artifact:
        msg = "Memo is not saved"
        raise NotImplementedError(msg)

    @classmethod
    def load(cls, artifact: Artifact) -> Self:
        msg = "Memo is not loaded"
        raise NotImplementedError(msg)


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail the test, naming ``what``, when the bound passes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout_s} s waiting for {what}"
            raise AssertionError(msg)
        time.sleep(0.001)


__all__ = [
    "CLASSES",
    "FEATURES",
    "GROUP",
    "LOGREG",
    "SCHEMA",
    "Broken",
    "FakeClock",
    "Gated",
    "Group",
    "Memo",
    "Stream",
    "Wrapped",
    "concept_a",
    "concept_b",
    "concept_poisoned",
    "config",
    "context",
    "dead",
    "decisions",
    "event",
    "install_trained",
    "label",
    "make_group",
    "of_type",
    "reports",
    "table_with",
    "trained_learner",
    "verdicts",
    "wait_for",
]
