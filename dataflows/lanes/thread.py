"""A lane whose model learns on a thread of the serving process: a slow model never holds back
serving, nor the other models, and nothing is copied across processes.

The thread takes the lane's jobs in order and runs each (`dataflows.jobs.run_job`: scored, then
learned); the queue and its skipping rule are `dataflows.lanes.queue.LaneQueue`'s. Control calls
from the train step (freeze, replace, store...) take the model lock between two jobs, ahead of the
next one.

With live refresh, a refresh fork's lane also hands its model's state to serving after the batches
it learns, within a budget of its time (`dataflows.lanes.live`: a copy, or replicas that catch up).
A process lane hands nothing over: serving asks its process (`dataflows.lanes.ask.LiveModel`).

``threaded=False`` runs each job at once on the caller's thread: deterministic, for unit tests.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import statistics
import threading
import time
from collections.abc import Callable, Iterator

from dataflows.jobs import Job, LaneResult, LaneState, StoredLane, run_job
from dataflows.lanes.live import LiveRefresh, Replicas
from dataflows.lanes.queue import LaneQueue
from dataflows.ports import CheckpointRef
from learners import Learner

__all__ = ["REPLAY_AFTER_COPIES", "ThreadLane"]

log = logging.getLogger("headwater")

REPLAY_AFTER_COPIES = 6  # copies measured before a lane may switch live refresh to replay


class ThreadLane(LaneQueue):
    """One model and the thread that scores and teaches it (a `dataflows.lanes.Lane`)."""

    def __init__(
        self, name: str, state: LaneState, *, max_backlog: int, threaded: bool, max_age_s: float = float("inf")
    ) -> None:
        super().__init__(name, state, max_backlog=max_backlog, max_age_s=max_age_s)
        self.threaded = threaded
        self._learner = state.learner
        self._model = threading.Lock()  # held while a job runs: swaps and copies wait for it
        self._busy = False
        self._closed = False
        self._waiting = 0  # control calls waiting for the model lock: they go before the next job
        self.live: LiveRefresh | None = None  # set by the train step (`set_live`)
        self._live_lock = threading.Lock()  # orders a publish with `set_live`
        self._replicas: Replicas | None = None  # live refresh by replay (`dataflows.lanes.live`)
        self._replay = False  # switched on when copies cost more than learning two batches
        self._learn_s = 0.0  # what learning a job took lately (moving average)
        self._copies = 0
        self._copy_times: collections.deque[float] = collections.deque(maxlen=REPLAY_AFTER_COPIES - 1)
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name=f"headwater-lane-{name}", daemon=True)
            self._thread.start()
        else:
            while self._jobs:
                self._results.append(self._process(self._jobs.popleft()))

    @property
    def learner(self) -> Learner:
        """The model itself: read it only in a lane whose model never learns (champion, standby)."""
        return self._learner

    @property
    def backlog(self) -> int:
        with self._cond:
            return len(self._jobs) + (1 if self._busy else 0)

    def submit(self, job: Job) -> None:
        if not self.threaded:
            with self._model:
                self._results.append(self._process(job))
                self._through = job.seq
            return
        with self._cond:
            self._enqueue(job)
            self._cond.notify_all()

    @property
    def serves(self) -> bool:
        """A thread lane can always serve what it learns (by copies or replicas, `set_live`)."""
        return True

    @property
    def dead(self) -> bool:
        """A thread lane never dies apart from the process that serves."""
        return False

    def await_live(self, timeout_s: float) -> None:
        """While it serves live, wait (at most ``timeout_s``) until every submitted job is learned
        and handed over (`wait_idle`); a lane that does not serve has nothing to hand over."""
        if self.live is not None:
            self.wait_idle(timeout_s)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every submitted job is done; False if ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._jobs or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def frozen(self) -> Learner:
        """A copy of the model as it is now, that nothing will ever teach again."""
        with self._control():
            return self._learner.clone(include_state=True)

    def freeze_as(self, successor: str) -> Learner:
        """A frozen copy of the model, and from this instant on the lane's work is credited to
        ``successor``: nothing learned after the copy is ever credited to the copied version."""
        with self._control():
            copy = self._learner.clone(include_state=True)
            self._version = successor
            self.frozen_through = self._through
            return copy

    def replace(self, version: str, learner: Learner, *, learns: bool, through: int = 0) -> None:
        """Put another model in this lane (a promotion, a rollback, a new fork). Jobs already
        queued are run by the new model, but those at or below ``through``, which the new model
        has run already (it is a copy of one that did): it must not learn them twice, nor be
        scored on what it learned. Results already made keep the version that made them."""
        with self._control():
            self._version, self._learner, self._learns = version, learner, learns
            self._replicas, self._replay = None, False  # another model: its costs are measured anew
            self._copies = 0
            self._copy_times.clear()
            with self._cond:
                self._drop_through(through)

    def rename(self, version: str) -> None:
        """The same model goes on as a new version (its parent was just promoted)."""
        with self._control():
            self._version = version

    def snapshot(self) -> LaneState:
        """Model, queued jobs and uncollected results at one instant: resuming from it redoes
        exactly the work that was not done."""
        with self._control(), self._cond:
            return LaneState(
                self._version, self._learner.clone(include_state=True), self._learns, list(self._jobs),
                list(self._results), self.skipped_total,
            )  # fmt: skip

    def store(self, save: Callable[[Learner], CheckpointRef], reuse: CheckpointRef | None = None) -> StoredLane:
        """The lane at one instant, its model saved with ``save`` (the registry's checkpoint store)
        while the lane waits: no copy of the model is made. A lane whose model never learns may
        hand in the ``reuse`` reference of its last save instead."""
        with self._control(), self._cond:
            ref = reuse if reuse is not None and not self._learns else save(self._learner)
            return StoredLane(
                self._version, ref, self._learns, list(self._jobs), list(self._results), self.skipped_total
            )

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @contextlib.contextmanager
    def _control(self) -> Iterator[None]:
        """The model lock, for a call from the train step: the lane's thread lets it in before its
        next job (a plain lock is not fair: a busy lane could win it again and again, and keep the
        serving thread waiting for its whole backlog instead of the job in progress)."""
        with self._cond:
            self._waiting += 1
        try:
            with self._model:
                yield
        finally:
            with self._cond:
                self._waiting -= 1
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while (not self._jobs or self._waiting) and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
            # The model lock is taken before the job leaves the queue and held until its result is
            # in: a snapshot (which takes the same lock) sees every job either queued or done.
            with self._model:
                with self._cond:
                    if not self._jobs or self._waiting:
                        continue
                    job = self._jobs.popleft()
                    self._queued_at.popleft()
                    self._busy = True
                result = self._process(job)
                self._through = job.seq
                with self._cond:
                    self._results.append(result)
                    self._busy = False
                    self._cond.notify_all()

    def set_live(self, live: LiveRefresh | None) -> None:
        """Start or stop publishing this lane's model after the batches it learns; once this returns,
        nothing from a previous `LiveRefresh` is published any more."""
        with self._live_lock:
            self.live = live

    def _process(self, job: Job) -> LaneResult:
        result = run_job(self.name, self._version, self._learner, self._learns, job)
        if result.learned:
            learn_s = result.learn_ms / 1000
            self._learn_s = learn_s if self._learn_s == 0 else 0.8 * self._learn_s + 0.2 * learn_s
            if self._replicas is not None and (self.live is None or not self._replicas.learned(job)):
                # Off (they would pile up batches to replay in one long stall when it comes back), or
                # too far behind: made again when next needed.
                self._replicas = None
        elif result.error is not None and result.error.startswith("learn"):
            self._replicas = None  # the model may have learned part of the batch: replicas would differ
        live = self.live
        # A lane with batches waiting learns them first: serving gets its state once it caught up
        # (a vote's member, which may never catch up on a busy machine, also every few batches).
        caught_up = not self._jobs or (live is not None and live.overdue(job.seq))
        if result.learned and live is not None and caught_up and live.due(self._version, time.monotonic()):
            live.handed = job.seq
            self._hand_over(live, job)
        return result

    def _hand_over(self, live: LiveRefresh, job: Job) -> None:
        """Hand serving the model's state as of ``job`` (the caller holds the model lock): a copy,
        or the replica off the board caught up (`dataflows.lanes.live`)."""
        started = time.perf_counter()
        try:
            if self._replay:
                if self._replicas is None:
                    self._replicas = Replicas(self._learner, job.seq)
                state: Learner = self._replicas.turn()
            else:
                state = self._learner.clone(include_state=True)
        except Exception as exc:  # a user's learner may fail to copy or learn: the champion serves on
            live.error = f"{type(exc).__name__}: {exc}"
            self._replicas = None
            how = "its replicas could not catch up" if self._replay else "the model could not be copied"
            log.warning("lane %s: live refresh stops, %s: %s", self.name, how, live.error)
            return
        took = time.perf_counter() - started
        if not self._replay:
            # The median of the last few copies, not an average: one slow copy must not switch a
            # model cheap to copy to replay for good. The first copy of a JVM model runs before the JIT
            # has compiled the serialisation code (480 ms against ~100 ms later for MOA's forest), and
            # a copy of the MLP took 69 ms once (2 ms as a rule) as the stream started, when batches
            # and their learning are smallest: replay then tripled its learning, serving fell 16
            # batches behind, and it served 9 points below the MLP alone on RBF.
            self._copies += 1
            self._copy_times.append(took)
            copy_s = statistics.median(self._copy_times)
            live.rest(copy_s, time.monotonic(), self._learn_s if self._copies > 2 else 0.0)
            if self._copies >= REPLAY_AFTER_COPIES and copy_s > 2 * self._learn_s > 0:
                self._replay = True
                log.info("lane %s: live refresh by replay (a copy takes %.1f ms, learning a batch %.1f ms)",
                         self.name, 1000 * copy_s, 1000 * self._learn_s)  # fmt: skip
        with self._live_lock:
            if self.live is live:
                live.publish(state)
