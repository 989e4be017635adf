"""What every lane keeps, whichever runs its model: the jobs waiting, the results not yet
collected, and the rule that skips a job too far behind.

A lane that falls more than ``max_backlog`` jobs behind, or whose oldest waiting job is older than
``max_age_s``, skips its oldest jobs (reported, and a gap in its lineage) instead of growing without
bound: it learns a sample of the stream. (Counting jobs alone is not enough: when serving slows
down, micro-batches grow, and a backlog of a few large jobs can be many seconds of work.) The thread
lane (`dataflows.lanes.thread`) and the process lane (`dataflows.lanes.process`) both build on it.
"""

from __future__ import annotations

import collections
import threading
import time

from dataflows.jobs import Job, LaneResult, LaneState, drop_stale, skipped_result

__all__ = ["LaneQueue"]


class LaneQueue:
    """What every lane keeps, whichever runs its model: the jobs waiting (with when they came),
    the results not yet collected, and the skipping rule. Callers hold ``_cond`` around changes."""

    def __init__(self, name: str, state: LaneState, *, max_backlog: int, max_age_s: float) -> None:
        self.name = name
        self.max_backlog = max(1, max_backlog)
        self.max_age_s = max_age_s
        self._version = state.version
        self._learns = state.learns
        self._jobs: collections.deque[Job] = collections.deque(state.jobs)
        self._queued_at: collections.deque[float] = collections.deque(time.monotonic() for _ in state.jobs)
        self._results: list[LaneResult] = list(state.results)
        self.skipped_total = state.skipped_total
        self._cond = threading.Condition()
        self._through = 0  # the last job this lane's model ran
        self.frozen_through = 0  # what the last frozen copy had run: a job at or below it is in it

    @property
    def version(self) -> str:
        return self._version

    @property
    def learns(self) -> bool:
        return self._learns

    @property
    def has_results(self) -> bool:
        with self._cond:
            return bool(self._results)

    def drain(self) -> list[LaneResult]:
        """The results made since the last call, in the order they were made (a skipped job's
        result may come before the result of the job running when it was skipped)."""
        with self._cond:
            out, self._results = self._results, []
        return out

    def _enqueue(self, job: Job) -> None:
        """Queue ``job``, first skipping what is too far behind (the caller holds ``_cond``)."""
        now = time.monotonic()
        skipped = drop_stale(self._jobs, self._queued_at, self.max_backlog, self.max_age_s, now)
        self.skipped_total += len(skipped)
        self._results.extend(skipped_result(self.name, self._version, j, why) for j, why in skipped)
        self._jobs.append(job)
        self._queued_at.append(now)

    def _drop_through(self, through: int) -> None:
        """Forget queued jobs at or below ``through`` (the caller holds ``_cond``)."""
        kept = [(j, t) for j, t in zip(self._jobs, self._queued_at, strict=True) if j.seq > through]
        self._jobs = collections.deque(j for j, _ in kept)
        self._queued_at = collections.deque(t for _, t in kept)
