"""Lanes: each model of a group scores and learns in a lane of its own, so that a slow model never
holds back serving, nor the other models.

The train step hands every lane the same `Job` (`dataflows.jobs`) and collects each lane's
`LaneResult`s later; it sees every lane through the `Lane` protocol and opens one with `open_lane`.
Two kinds do the work:

- `ThreadLane` (`thread.py`): a thread of the serving process; with live refresh it hands copies or
  replicas of its model to serving (`live.py`);
- `ProcessLane` (`process.py`): the model in a process of its own, off the serving process's GIL
  (`child.py` is the process's side); with live refresh serving asks it (`ask.py`).

Both keep their queue with `LaneQueue` (`queue.py`). `Job`, `LaneResult`, `LaneState` and
`StoredLane` are also this package's names: recovery snapshots refer to them as ``dataflows.lanes.*``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from dataflows.config import GateSpec
from dataflows.jobs import Job, LaneResult, LaneState, StoredLane
from dataflows.lanes.live import LiveRefresh
from dataflows.lanes.process import ProcessLane
from dataflows.lanes.queue import LaneQueue
from dataflows.lanes.thread import ThreadLane
from dataflows.ports import CheckpointRef
from learners import Learner

__all__ = [
    "Job",
    "Lane",
    "LaneQueue",
    "LaneResult",
    "LaneState",
    "LiveRefresh",
    "ProcessLane",
    "StoredLane",
    "ThreadLane",
    "open_lane",
]


class Lane(Protocol):
    """One model and the worker that scores and teaches it, as the train step uses it.

    Jobs run in order, scored then learned (`dataflows.jobs.run_job`); a lane too far behind skips
    its oldest. Control calls (`frozen`, `freeze_as`, `replace`, `rename`, `snapshot`, `store`) see
    the model between two jobs, with the queued jobs and uncollected results of that same instant.
    """

    name: str
    frozen_through: int  # the last job the last frozen copy had run: a job at or below it is in it

    @property
    def version(self) -> str:
        """The version the lane's work is credited to now."""
        ...

    @property
    def learns(self) -> bool: ...

    @property
    def learner(self) -> Learner:
        """The model (a process lane: the one last handed in, for its class). Read it only in a lane
        whose model never learns (champion, standby)."""
        ...

    @property
    def backlog(self) -> int:
        """Jobs submitted and not yet done (the one running included)."""
        ...

    @property
    def has_results(self) -> bool: ...

    @property
    def skipped_total(self) -> int: ...

    @property
    def live(self) -> LiveRefresh | None:
        """What `set_live` set: how the lane's model serves, or None."""
        ...

    @property
    def serves(self) -> bool:
        """Whether `set_live` can make this lane's model serve (a process lane: only one opened to)."""
        ...

    @property
    def dead(self) -> bool:
        """Whether the lane's worker ended while the lane was open (a process lane's process died)."""
        ...

    def submit(self, job: Job) -> None: ...

    def drain(self) -> list[LaneResult]:
        """The results made since the last call, in the order they were made."""
        ...

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every submitted job is done; False if ``timeout_s`` passed first."""
        ...

    def await_live(self, timeout_s: float) -> None:
        """With live refresh, wait at most ``timeout_s`` for the jobs submitted to reach serving,
        where that wait is worth it (see each kind)."""
        ...

    def frozen(self) -> Learner:
        """A copy of the model as it is now, that nothing will ever teach again."""
        ...

    def freeze_as(self, successor: str) -> Learner:
        """A frozen copy, and from this instant on the lane's work is credited to ``successor``."""
        ...

    def replace(self, version: str, learner: Learner, *, learns: bool, through: int = 0) -> None:
        """Put another model in this lane; queued jobs at or below ``through`` are not run by it."""
        ...

    def rename(self, version: str) -> None:
        """The same model goes on as a new version."""
        ...

    def snapshot(self) -> LaneState: ...

    def store(self, save: Callable[[Learner], CheckpointRef], reuse: CheckpointRef | None = None) -> StoredLane:
        """The lane at one instant, its model saved with ``save`` (``reuse``: the last save's
        reference, for a model that never learns)."""
        ...

    def set_live(self, live: LiveRefresh | None) -> None:
        """Start or stop serving what this lane learns."""
        ...

    def close(self) -> None: ...


def open_lane(name: str, state: LaneState, gate: GateSpec, *, own_process: bool = True, serves: bool = False) -> Lane:
    """A lane for ``state``'s model, of the kind the gate's settings ask for.

    A model that learns goes to a process of its own with ``gate.processes`` (and threads on),
    unless ``own_process`` is False; ``serves``: that process may serve live (`ProcessLane`). Every
    other lane is a thread. A model that never learns (champion, standby) only scores: its scores
    are the other half of every candidate's evidence, and a skipped job would leave every
    candidate without a pair for it. Scoring is what serving does already, so these lanes keep up;
    their bound is only a backstop.
    """
    if gate.processes and gate.threaded and state.learns and own_process:
        return ProcessLane(
            name, state, max_backlog=gate.max_lag_batches, max_age_s=gate.max_lag_s, serves=serves,
            answer_s=gate.live_refresh_wait_ms / 1000,
        )  # fmt: skip
    if not state.learns:
        backlog = 16 * gate.max_lag_batches
        return ThreadLane(name, state, max_backlog=backlog, max_age_s=float("inf"), threaded=gate.threaded)
    return ThreadLane(name, state, max_backlog=gate.max_lag_batches, max_age_s=gate.max_lag_s, threaded=gate.threaded)
