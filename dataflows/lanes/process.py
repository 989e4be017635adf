"""A lane whose model learns in a process of its own: it does not share the serving process's GIL.

Threads of one Python process take turns on one interpreter lock: a learner that runs Python code
(River learns one example at a time) holds it while the thread that serves waits
(`bench/results/candidates.md`). A `ProcessLane` keeps the model in a child process and talks to
it over a pipe; it has the same interface (`dataflows.lanes.Lane`) and the same guarantees as a
`ThreadLane`:

* jobs are scored then learned in order, one at a time; the parent keeps the queue, so a lane
  that falls behind skips its oldest jobs exactly as a threaded lane does;
* `frozen`, `freeze_as` and `store` see the model between two jobs, with the queued jobs and
  uncollected results of that same instant (the parent sends no new job until the answer is in);
* models travel between the two processes pickled: both are Headwater's own (never data from
  outside), and a stored state goes through the registry's digest-checked store as always;
* the train step never waits on the child: one thread per lane writes the pipe, another reads it,
  and the process starts in the background (jobs queue meanwhile, as for any slow lane).

Every lane's process forks from one server (`dataflows.lanes.child.start_lane_server`) that has
imported Headwater and the learners' modules once, and runs at SCHED_IDLE (all but those that
serve: a live fork's, below, and a vote member's, asked the same way): it learns on CPU time that
serving leaves, so serving latency does not grow with the number of candidates; on a machine whose
CPUs are busy serving, candidates fall behind instead (their lag and skipped batches are reported).

Only lanes whose model learns (candidates) go to processes: the champion and the standby only
score, cheaply, and serving reads their learners in place.

**Live refresh from a process** (`promotion.live_refresh`): a refresh fork's process also serves.
Its model never comes back to the serving process (a grown Hoeffding tree takes 13 ms to unpickle,
in the serving process's GIL): serving asks the process instead, over a pipe of its own, through a
`LiveModel` on the board (`ServingBoard.refresh`; the question side is `dataflows.lanes.ask`). The
process answers between jobs, and between pieces of one (`run_job`), with the model as it is then:
the very model that learns, as the learner alone predicts, with no copy and no state handed over.
Serving waits for an answer at most ``answer_s`` (``live_refresh_wait_ms``): a question too large
for an empty pipe goes through a thread of the lane's own, so it never holds serving either, and
answers come back through another, so the process never blocks on one nobody reads. Past that, or
while the process still owes the answer to an earlier question, or when it no longer holds the
version asked for, the model is `Unavailable` and the champion serves those events (`serve_batch`
falls back; no error is reported: each prediction names the route that served it). Such a lane's
process runs at normal priority.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from dataflows.jobs import Job, LaneResult, LaneState, StoredLane
from dataflows.lanes.ask import LiveModel, Questions
from dataflows.lanes.child import CONTEXT, lane_process, start_lane_server
from dataflows.lanes.queue import LaneQueue
from dataflows.ports import CheckpointRef
from dataflows.serve import Unavailable
from learners import Learner
from learners.base import FloatArray

if TYPE_CHECKING:
    from dataflows.lanes.live import LiveRefresh

__all__ = ["ProcessLane"]

log = logging.getLogger("dataflows.process_lane")  # the name it logged under before the lanes package


class ProcessLane(LaneQueue):
    """A `dataflows.lanes.Lane` with its model in a child process (same methods and meaning)."""

    def __init__(
        self,
        name: str,
        state: LaneState,
        *,
        max_backlog: int,
        max_age_s: float = float("inf"),
        serves: bool = False,
        answer_s: float = 0.05,
    ) -> None:
        """``serves``: the lane may serve live (`set_live`): its process answers serving's
        questions, at normal priority; ``answer_s``: how long one question may take."""
        super().__init__(name, state, max_backlog=max_backlog, max_age_s=max_age_s)
        # The model last handed in, or taken back at close: the live one learns in the child meanwhile.
        self._held = state.learner
        self._closed = self._stopping = False
        self._in_flight: Job | None = None
        self._holding = 0  # answers awaited from the child: no job is sent meanwhile
        self._answers: collections.deque[Learner] = collections.deque()  # models the child sent back
        self._started = False  # until then, the model handed in (`_held`) is the lane's model
        self._start_error: str | None = None
        # Every message to the child goes through this queue to one thread that writes the pipe:
        # no caller (the worker that serves) ever waits on a pipe whose reader is busy, or starting.
        self._outbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._conn, child = CONTEXT.Pipe()
        # Serving's questions and their answers: a pipe of their own, used by the serving threads only.
        self._asked: Questions | None = None
        asked: Connection | None = None
        if serves:
            mine, asked = CONTEXT.Pipe()
            self._asked = Questions(name, mine)
        self._ask_lock = threading.Lock()
        self.answer_s = answer_s
        self.serves = serves
        self.live: LiveRefresh | None = None  # set by the train step (`set_live`)
        self._process: multiprocessing.process.BaseProcess | None = None  # made once the server runs
        self._send(("model", state.version, state.learner, state.learns))
        # The process starts in the background: until it runs, jobs queue (and are skipped past
        # the bound) as for any slow lane.
        self._pump = threading.Thread(target=self._run_pump, args=(child, asked), name=f"headwater-lane-{name}-tx")
        self._pump.daemon = True
        self._pump.start()

    def _run_pump(self, child: Connection, asked: Connection | None) -> None:
        """Start the process, then write the outbox to the pipe, in order, until told to stop."""
        try:
            start_lane_server()
            self._process = lane_process(child, asked, self.name)
            self._process.start()
        except Exception as exc:
            log.error("lane %s: its process could not start: %s", self.name, exc)
            with self._cond:
                self._start_error = str(exc)
                self._cond.notify_all()
            return
        finally:
            child.close()
            if asked is not None:
                asked.close()
        threading.Thread(target=self._receive, name=f"headwater-lane-{self.name}-rx", daemon=True).start()
        with self._cond:
            self._started = True
            self._dispatch()
            self._cond.notify_all()
        with self._ask_lock:
            self._publish()  # what the train step asked for before the process ran
        while (message := self._outbox.get()) is not None:
            try:
                self._conn.send(message)
            except OSError:  # the process died: `_receive` sees it too
                return

    @property
    def learner(self) -> Learner:
        """The model last handed in (for its class): the live one learns in the child process."""
        return self._held

    @property
    def backlog(self) -> int:
        with self._cond:
            return len(self._jobs) + (1 if self._in_flight is not None else 0)

    def submit(self, job: Job) -> None:
        with self._cond:
            self._enqueue(job)
            self._dispatch()

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._jobs or self._in_flight is not None:
                left = deadline - time.monotonic()
                if left <= 0 or self._start_error is not None or (self._started and not self._alive()):
                    return False
                self._cond.wait(left)
        return True

    def await_live(self, timeout_s: float) -> None:
        """Nothing to wait for: serving's next question is answered with what the process has
        learned by then, and waiting would only serialise serving with learning (at 3,000
        events/s a Hoeffding tree's jobs grew to 470 examples that way)."""

    def frozen(self) -> Learner:
        learner, _ = self._ask(None)
        return learner

    def freeze_as(self, successor: str) -> Learner:
        learner, _ = self._ask(successor)
        return learner

    def replace(self, version: str, learner: Learner, *, learns: bool, through: int = 0) -> None:
        with self._cond:
            self._version, self._learns, self._held = version, learns, learner
            self._drop_through(through)
            self._send(("model", version, learner, learns))

    def rename(self, version: str) -> None:
        with self._cond:
            self._version = version
            self._send(("rename", version))

    def snapshot(self) -> LaneState:
        learner, (jobs, results) = self._ask(None, keep=True)
        return LaneState(self._version, learner, self._learns, jobs, results, self.skipped_total)

    def store(self, save: Callable[[Learner], CheckpointRef], reuse: CheckpointRef | None = None) -> StoredLane:
        learner, (jobs, results) = self._ask(None, keep=True)
        return StoredLane(self._version, save(learner), self._learns, jobs, results, self.skipped_total)

    def set_live(self, live: LiveRefresh | None) -> None:
        """Serve this lane's model (asked in its process) in place of ``live.champion``, as
        ``live.fork``, from now on; None: nothing asked of it is served any more (the train step
        takes it off the board). Until its process runs, the champion serves."""
        with self._ask_lock:
            self.live = live
            self._publish()

    def _publish(self) -> None:
        live = self.live  # the caller holds the question lock, which orders this with `set_live`
        if live is not None and self._asked is not None and self._started and not self._closed:
            live.publish(LiveModel(self, live.fork, self.answer_s))

    @property
    def dead(self) -> bool:
        """Whether the lane's process ended while the lane was open (it answers nothing more)."""
        return self._started and not self._closed and not self._alive()

    def ask(self, version: str, x: FloatArray, timeout_s: float) -> FloatArray:
        """The probabilities the lane's model gives ``x`` now, if the lane still holds ``version``.
        Raises `Unavailable` when it cannot answer within ``timeout_s``, still owes the answer to an
        earlier question, or no longer holds ``version``; RuntimeError when its process died or its
        model failed to predict. Serving falls back to the champion either way."""
        if self._asked is None:
            msg = f"lane {self.name} does not serve"
            raise RuntimeError(msg)
        deadline = time.monotonic() + timeout_s
        with self._ask_lock:
            if self.live is None or self.live.fork != version or self._closed:
                msg = f"lane {self.name} does not serve {version} (any more)"
                raise Unavailable(msg)
            if not self._alive():
                msg = f"lane {self.name}: its process is not running"
                raise RuntimeError(msg)
            proba, error, unavailable = self._asked.ask(version, x, deadline, self.answer_s)
        if unavailable:
            raise Unavailable(error)
        if error is not None or proba is None:
            raise RuntimeError(error or "no answer")
        return proba

    def close(self) -> None:
        """End the child process, keeping its model: a snapshot after the input ends still reads it."""
        with self._cond:
            self._stopping = True  # no job is sent from now on: the queued ones stay in the snapshot
        deadline = time.monotonic() + 60
        with self._cond:
            while not self._started and self._start_error is None and time.monotonic() < deadline:
                self._cond.wait(0.1)
        if self._started and not self._closed and self._alive():
            try:
                self._held = self.frozen()
            except (OSError, RuntimeError) as exc:
                log.error("lane %s: its model could not be taken back from its process: %s", self.name, exc)
        with self._cond:
            if self._started and not self._closed:
                self._send(("close",))
            self._closed = True
            self._outbox.put(None)
        self._pump.join(timeout=5)
        if self._asked is not None:
            self._asked.stop_writing()
        if self._process is not None and self._process.pid is not None:
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.kill()
        self._conn.close()
        if self._asked is not None:
            with self._ask_lock:
                self._asked.close()

    # -- the pipe -------------------------------------------------------------------------------

    def _alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def _ask(self, successor: str | None, *, keep: bool = False) -> tuple[Learner, tuple[list[Job], list[LaneResult]]]:
        """The child's model after the job in flight (if any), and — with ``keep`` — the queued
        jobs and uncollected results of that same instant. With ``successor``, what the lane
        learns from then on is credited to that version."""
        with self._cond:
            if not self._started or self._closed:  # the model is here: not yet handed to the child, or back
                if successor is not None:
                    self._version = successor
                    self._send(("rename", successor))
                self.frozen_through = self._through
                kept = (list(self._jobs), list(self._results)) if keep else ([], [])
                return self._held.clone(include_state=True), kept
            self._holding += 1
            self._send(("get",))
            if successor is not None:
                self._version = successor
                self._send(("rename", successor))
            while not self._answers:
                if not self._alive():
                    exitcode = None if self._process is None else self._process.exitcode
                    msg = f"lane {self.name}: its process died (exit code {exitcode})"
                    raise RuntimeError(msg)
                self._cond.wait(1.0)
            learner = self._answers.popleft()
            self.frozen_through = self._through
            kept = (list(self._jobs), list(self._results)) if keep else ([], [])
            self._holding -= 1
            self._dispatch()
        return learner, kept

    def _send(self, message: tuple[Any, ...]) -> None:
        if not self._closed:
            self._outbox.put(message)

    def _dispatch(self) -> None:
        """Send the next job if none is in flight and no answer is awaited (caller holds the lock)."""
        if self._started and not self._stopping and self._in_flight is None and self._jobs and not self._holding:
            self._in_flight = self._jobs.popleft()
            self._queued_at.popleft()
            self._send(("job", self._in_flight))

    def _receive(self) -> None:
        while True:
            try:
                kind, payload = self._conn.recv()
            except (EOFError, OSError):
                with self._cond:
                    self._cond.notify_all()
                return
            with self._cond:
                if kind == "result":
                    self._results.append(payload)
                    self._through = max(self._through, payload.seq)
                    self._in_flight = None
                    self._dispatch()
                else:
                    self._answers.append(payload)
                self._cond.notify_all()
