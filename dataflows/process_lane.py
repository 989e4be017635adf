"""A lane whose model learns in a process of its own: it does not share the serving process's GIL.

Threads of one Python process take turns on one interpreter lock: a learner that runs Python code
(River learns one example at a time) holds it while the thread that serves waits
(`bench/results/candidates.md`). A `ProcessLane` keeps the model in a child process and talks to
it over a pipe; it has the same interface and the same guarantees as a threaded `Lane`:

* jobs are scored then learned in order, one at a time; the parent keeps the queue, so a lane
  that falls behind skips its oldest jobs exactly as a threaded lane does;
* `frozen`, `freeze_as` and `store` see the model between two jobs, with the queued jobs and
  uncollected results of that same instant (the parent sends no new job until the answer is in);
* models travel between the two processes pickled: both are Headwater's own (never data from
  outside), and a stored state goes through the registry's digest-checked store as always.

Only lanes whose model learns (candidates) go to processes: the champion and the standby only
score, cheaply, and serving reads their learners in place.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from dataflows.lanes import Job, LaneQueue, LaneResult, LaneState, StoredLane, run_job
from dataflows.ports import CheckpointRef
from learners import Learner

__all__ = ["ProcessLane"]

_SPAWN = multiprocessing.get_context("spawn")  # a fork of a process with threads could deadlock


def _child(conn: Connection, name: str, nice: int) -> None:  # pragma: no cover - runs in the child process
    if nice:
        os.nice(nice)  # serving first: the learner takes the CPU that serving leaves
    learner: Any = None
    version, learns = "", False
    while True:
        message = conn.recv()
        kind = message[0]
        if kind == "model":
            _, version, blob, learns = message
            learner = pickle.loads(blob)  # noqa: S301, TID251  # the parent's own model, over its own pipe
        elif kind == "rename":
            version = message[1]
        elif kind == "job":
            conn.send(("result", run_job(name, version, learner, learns, message[1])))
        elif kind == "get":
            conn.send(("model", pickle.dumps(learner, protocol=pickle.HIGHEST_PROTOCOL)))
        elif kind == "close":
            conn.close()
            return


class ProcessLane(LaneQueue):
    """A `dataflows.lanes.Lane` with its model in a child process (same methods and meaning)."""

    def __init__(
        self,
        name: str,
        state: LaneState,
        *,
        max_backlog: int,
        max_age_s: float = float("inf"),
        threaded: bool = True,
        nice: int = 10,
    ) -> None:
        super().__init__(name, state, max_backlog=max_backlog, max_age_s=max_age_s)
        self.threaded = True
        self._learner_class_of = state.learner  # for its class only: the live model is in the child
        self._in_flight: Job | None = None
        self._holding = 0  # answers awaited from the child: no job is sent meanwhile
        self._answers: collections.deque[bytes] = collections.deque()
        self._conn, child = _SPAWN.Pipe()
        self._process = _SPAWN.Process(
            target=_child, args=(child, name, nice), name=f"headwater-lane-{name}", daemon=True
        )
        self._process.start()
        child.close()
        self._send(
            ("model", state.version, pickle.dumps(state.learner, protocol=pickle.HIGHEST_PROTOCOL), state.learns)
        )
        self._receiver = threading.Thread(target=self._receive, name=f"headwater-lane-{name}-rx", daemon=True)
        self._receiver.start()
        with self._cond:
            self._dispatch()

    @property
    def learner(self) -> Learner:
        """The model as it was handed in (for its class): the live one learns in the child process."""
        return self._learner_class_of

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
                if left <= 0 or not self._process.is_alive():
                    return False
                self._cond.wait(left)
        return True

    def frozen(self) -> Learner:
        learner, _ = self._ask(None)
        return learner

    def freeze_as(self, successor: str) -> Learner:
        learner, _ = self._ask(successor)
        return learner

    def replace(self, version: str, learner: Learner, *, learns: bool, through: int = 0) -> None:
        with self._cond:
            self._version, self._learns, self._learner_class_of = version, learns, learner
            self._drop_through(through)
            self._send(("model", version, pickle.dumps(learner, protocol=pickle.HIGHEST_PROTOCOL), learns))

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

    def close(self) -> None:
        with self._cond:
            if self._process.is_alive():
                self._send(("close",))
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()

    # -- the pipe -------------------------------------------------------------------------------

    def _ask(self, successor: str | None, *, keep: bool = False) -> tuple[Learner, tuple[list[Job], list[LaneResult]]]:
        """The child's model after the job in flight (if any), and — with ``keep`` — the queued
        jobs and uncollected results of that same instant. With ``successor``, what the lane
        learns from then on is credited to that version."""
        with self._cond:
            self._holding += 1
            self._send(("get",))
            if successor is not None:
                self._version = successor
                self._send(("rename", successor))
            while not self._answers:
                if not self._process.is_alive():
                    msg = f"lane {self.name}: its process died (exit code {self._process.exitcode})"
                    raise RuntimeError(msg)
                self._cond.wait(1.0)
            blob = self._answers.popleft()
            self.frozen_through = self._through
            kept = (list(self._jobs), list(self._results)) if keep else ([], [])
            self._holding -= 1
            self._dispatch()
        learner: Learner = pickle.loads(blob)  # noqa: S301, TID251  # our own child's model, over our own pipe
        return learner, kept

    def _send(self, message: tuple[Any, ...]) -> None:
        self._conn.send(message)

    def _dispatch(self) -> None:
        """Send the next job if none is in flight and no answer is awaited (caller holds the lock)."""
        if self._in_flight is None and self._jobs and not self._holding:
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
