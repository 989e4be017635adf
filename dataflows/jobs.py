"""Jobs: what the train step hands every lane, what a lane gives back, and how a lane runs one.

A `Job` is one micro-batch's labelled examples, in order, and the input offsets it covered. Every
lane — a thread (`dataflows.lanes.thread`) or a process (`dataflows.lanes.process`) — runs it with
`run_job`: scores the examples with the model *as it is* (prequential: before learning them),
then, if the model learns, learns them, and leaves a `LaneResult`. A lane too far behind skips its
oldest jobs (`drop_stale`, `skipped_result`). `LaneState` and `StoredLane` are a lane as a snapshot
holds it.

This module imports no lane: the lanes, live refresh (`dataflows.lanes.live`) and the train step
all import it.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dataflows.ports import CheckpointRef, OffsetRange
from learners import Learner

__all__ = [
    "SERVE_CHUNK",
    "Job",
    "LaneResult",
    "LaneState",
    "StoredLane",
    "drop_stale",
    "piece_size",
    "run_job",
    "skipped_result",
]

SERVE_CHUNK = 32  # examples a lane that serves scores or learns between two looks at serving's questions


@dataclass(frozen=True)
class Job:
    """One micro-batch's labelled examples, and the input offsets the batch covered."""

    seq: int
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]
    routes: npt.NDArray[np.int8]  # which route served each example (canary evidence uses its own)
    ranges: tuple[OffsetRange, ...] = ()
    learn: bool = True  # False: scored only, by a lane that learns otherwise (paused by an operator)
    served: npt.NDArray[np.int64] | None = None  # the class serving gave each example (-1: not served)

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class LaneResult:
    """What a lane did with one job: per-example scores made before learning, and what it learned."""

    lane: str
    version: str
    seq: int
    correct: npt.NDArray[np.float64]  # 1.0 right, 0.0 wrong (or could not predict)
    proba_true: npt.NDArray[np.float64]  # probability given to the true class (log loss)
    routes: npt.NDArray[np.int8]
    learned: int = 0
    learn_ms: float = 0.0
    error: str | None = None
    skipped: bool = False
    ranges: tuple[OffsetRange, ...] = ()
    proba: npt.NDArray[np.float64] | None = None  # (n, classes) before learning: what a vote combines


@dataclass
class LaneState:
    """A lane as a snapshot holds it: its model and the work it had not done yet."""

    version: str
    learner: Learner
    learns: bool
    jobs: list[Job] = field(default_factory=list)
    results: list[LaneResult] = field(default_factory=list)
    skipped_total: int = 0


@dataclass
class StoredLane:
    """A lane as a recovery snapshot keeps it: the model saved in the registry's checkpoint store
    (safetensors for PyTorch, digest-checked), referred to here instead of pickled."""

    version: str
    checkpoint: CheckpointRef
    learns: bool
    jobs: list[Job] = field(default_factory=list)
    results: list[LaneResult] = field(default_factory=list)
    skipped_total: int = 0


def piece_size(learner: Learner) -> int:
    """Examples a serving lane learns between two looks at serving's questions: ``SERVE_CHUNK``,
    rounded up to a whole number of the learner's ``minibatch`` where it has one."""
    m = getattr(learner, "minibatch", 1)
    m = m if isinstance(m, int) and m >= 1 else 1
    return -(-SERVE_CHUNK // m) * m


def run_job(
    name: str, version: str, learner: Learner, learns: bool, job: Job, between: Callable[[], None] | None = None
) -> LaneResult:
    """Score the job's examples with the model as it is, then (if it learns) learn them.

    ``between``: called between pieces of about ``SERVE_CHUNK`` examples, scored then learned a
    piece at a time (a lane that serves answers serving's questions there,
    `dataflows.lanes.process`). A piece is a smaller micro-batch, which the built-in learners learn
    about as well as the whole (`tests/conformance`): River's learn event by event either way, and a
    piece is a whole number of a learner's ``minibatch`` (the MLP's events per optimiser step), so
    its steps stay where they were.
    """
    n = len(job)
    step = piece_size(learner) if between is not None else max(n, 1)
    correct = np.zeros(n)
    proba_true = np.zeros(n)
    proba: npt.NDArray[np.float64] | None = None
    error: str | None = None
    if n:
        try:
            for start in range(0, n, step):
                if start and between is not None:
                    between()
                rows = slice(start, start + step)
                p = np.asarray(learner.predict_proba(job.x[rows]), dtype=np.float64)
                y = job.y[rows]
                if p.ndim != 2 or p.shape[0] != len(y) or p.shape[1] <= int(y.max()) or not np.isfinite(p).all():
                    msg = f"probabilities of shape {p.shape} for {len(y)} examples, or not finite"
                    raise ValueError(msg)
                correct[rows] = p.argmax(axis=1) == y
                proba_true[rows] = p[np.arange(len(y)), y]
                if proba is None:
                    proba = np.empty((n, p.shape[1]))
                proba[rows] = p
        except Exception as exc:  # could not predict: scored as wrong, never as right
            correct[:], proba_true[:], proba = 0.0, 0.0, None
            error = f"predict: {type(exc).__name__}: {exc}"
    learned, learn_ms, learn_failed = 0, 0.0, False
    learns = learns and job.learn
    if learns and n:
        learn_s = 0.0
        try:
            for start in range(0, n, step):
                if between is not None:
                    between()
                started = time.perf_counter()
                try:
                    learner.learn(job.x[start : start + step], job.y[start : start + step])
                finally:
                    learn_s += time.perf_counter() - started
            learned = n
        except Exception as exc:
            learn_failed = True
            error = f"learn: {type(exc).__name__}: {exc}" + (f"; {error}" if error else "")
        learn_ms = learn_s * 1000
    # The stretch of input this model trained through: none if it does not learn or failed to.
    ranges = job.ranges if learns and not learn_failed else ()
    return LaneResult(
        name, version, job.seq, correct, proba_true, job.routes, learned, learn_ms, error, ranges=ranges, proba=proba
    )


def drop_stale(
    jobs: collections.deque[Job], queued_at: collections.deque[float], max_backlog: int, max_age_s: float, now: float
) -> list[tuple[Job, str]]:
    """Take the oldest queued jobs off while the queue is full or its oldest job waited too long;
    return them with why (the caller holds the lane's lock)."""
    dropped: list[tuple[Job, str]] = []
    while jobs:
        waited = now - queued_at[0]
        if len(jobs) >= max_backlog:
            why = f"{max_backlog} batches behind"
        elif waited > max_age_s:
            why = f"its oldest batch waited {waited:.1f} s (more than {max_age_s:g} s)"
        else:
            break
        dropped.append((jobs.popleft(), why))
        queued_at.popleft()
    return dropped


def skipped_result(name: str, version: str, job: Job, why: str) -> LaneResult:
    """What a lane reports for a job it skipped: nothing scored, nothing learned, and why."""
    empty = np.zeros(0)
    return LaneResult(
        name, version, job.seq, empty, empty, np.zeros(0, dtype=np.int8), skipped=True,
        error=f"{why}: skipped batch {job.seq} ({len(job)} examples)",
    )  # fmt: skip


# A recovery snapshot (pickle) names each class by its module and name. These were defined in
# `dataflows.lanes` before this module existed, and keep that name (`dataflows.lanes` re-exports
# them): snapshots made before and after the move name the same classes, and each release reads
# the other's.
for _pickled in (Job, LaneResult, LaneState, StoredLane):
    _pickled.__module__ = "dataflows.lanes"
