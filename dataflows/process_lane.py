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
import logging
import multiprocessing
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterable
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from typing import Any

from dataflows.lanes import Job, LaneQueue, LaneResult, LaneState, StoredLane, run_job
from dataflows.ports import CheckpointRef
from learners import Learner

__all__ = ["ProcessLane", "start_lane_server", "yield_cpu"]

log = logging.getLogger(__name__)

# Lanes' processes fork from a forkserver that has imported Headwater (and the learners' modules)
# once: a new lane starts in milliseconds instead of paying seconds of imports, and the server is
# single-threaded, so forking it is safe (forking the serving process, which has threads, is not).
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["dataflows.process_lane"])
_SERVER_LOCK = threading.Lock()
_SERVER_STARTED = False
_TORCH_THREADS = 1  # each lane's process: one learner per process, and no OpenMP team to wait on


def start_lane_server(modules: Iterable[str] = (), *, torch_threads: int = 1) -> None:
    """Start the server that lanes' processes fork from, and wait until it has imported
    ``modules`` (the learners' modules) and can fork.

    A daemon calls this at start-up, before it serves anything: its first candidates then start
    in milliseconds instead of importing for seconds behind serving (they run below it). Once the
    server runs, later calls change nothing (a lane imports what the server lacks itself).
    ``torch_threads``: PyTorch's intra-op threads in each lane's process.
    """
    global _SERVER_STARTED, _TORCH_THREADS
    with _SERVER_LOCK:
        _TORCH_THREADS = torch_threads
        if not _SERVER_STARTED:
            preload = ["dataflows.process_lane", *sorted(set(modules))]
            if "learners.torch_learner" in preload:
                preload.append("torch._dynamo")  # imported on building the first optimizer: seconds
            _CONTEXT.set_forkserver_preload(preload)
            ready = _CONTEXT.Process(target=_ready, name="headwater-lane-server-ready", daemon=True)
            ready.start()  # returns once the server has imported and forked
            ready.join()
            _SERVER_STARTED = True
        forkserver.ensure_running()  # at once if running; again if it died


def _ready() -> None:  # pragma: no cover - runs in the child process
    """Nothing: a process forked only to know that the server can fork."""


def yield_cpu() -> None:
    """Lower the calling thread below serving: Linux's SCHED_IDLE runs it only on CPU time that
    nothing else wants (nice 19 where the OS has no such policy)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


def _child(conn: Connection, name: str, torch_threads: int) -> None:  # pragma: no cover - runs in the child
    yield_cpu()  # serving first: the learner runs on CPU time that serving leaves
    if "torch" in sys.modules:
        # A team of OpenMP threads in a process that runs on idle CPU only spins waiting for its
        # descheduled members: one thread each, unless the daemon was told otherwise.
        sys.modules["torch"].set_num_threads(torch_threads)
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
    ) -> None:
        super().__init__(name, state, max_backlog=max_backlog, max_age_s=max_age_s)
        self.threaded = True
        # The model last handed in, or taken back at close: the live one learns in the child meanwhile.
        self._held = state.learner
        self._closed = self._stopping = False
        self._in_flight: Job | None = None
        self._holding = 0  # answers awaited from the child: no job is sent meanwhile
        self._answers: collections.deque[bytes] = collections.deque()
        self._started = False  # until then, messages wait in `_pending` and the parent's model is current
        self._start_error: str | None = None
        self._pending: list[tuple[Any, ...]] = []
        self._conn, child = _CONTEXT.Pipe()
        self._process = _CONTEXT.Process(
            target=_child, args=(child, name, _TORCH_THREADS), name=f"headwater-lane-{name}", daemon=True
        )
        self._send(
            ("model", state.version, pickle.dumps(state.learner, protocol=pickle.HIGHEST_PROTOCOL), state.learns)
        )
        # The process starts in the background: the caller (the worker that serves) never waits for
        # it. Until it runs, jobs queue (and are skipped past the bound) as for any slow lane.
        self._starter = threading.Thread(target=self._start, args=(child,), name=f"headwater-lane-{name}-start")
        self._starter.daemon = True
        self._starter.start()

    def _start(self, child: Connection) -> None:
        try:
            start_lane_server(torch_threads=_TORCH_THREADS)
            self._process.start()
        except Exception as exc:
            log.error("lane %s: its process could not start: %s", self.name, exc)
            with self._cond:
                self._start_error = str(exc)
                self._cond.notify_all()
            return
        finally:
            child.close()
        self._receiver = threading.Thread(target=self._receive, name=f"headwater-lane-{self.name}-rx", daemon=True)
        self._receiver.start()
        with self._cond:
            for message in self._pending:
                self._conn.send(message)
            self._pending.clear()
            self._started = True
            self._dispatch()
            self._cond.notify_all()

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
                if left <= 0 or self._start_error is not None or (self._started and not self._process.is_alive()):
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
            self._version, self._learns, self._held = version, learns, learner
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
        """End the child process, keeping its model: a snapshot after the input ends still reads it."""
        self._starter.join(timeout=60)
        with self._cond:
            self._stopping = True  # no job is sent from now on: the queued ones stay in the snapshot
        if self._started and not self._closed and self._process.is_alive():
            try:
                self._held = self.frozen()
            except (OSError, RuntimeError) as exc:
                log.error("lane %s: its model could not be taken back from its process: %s", self.name, exc)
        with self._cond:
            if self._started and not self._closed and self._process.is_alive():
                self._send(("close",))
            self._closed = True
        if self._started:
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
            if not self._started or self._closed:  # the model is here: not yet handed to the child, or back
                blob = pickle.dumps(self._held, protocol=pickle.HIGHEST_PROTOCOL)
                if successor is not None:
                    self._version = successor
                    self._send(("rename", successor))
                self.frozen_through = self._through
                kept = (list(self._jobs), list(self._results)) if keep else ([], [])
                return pickle.loads(blob), kept  # noqa: S301, TID251  # our own model, a copy
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
        if self._closed:
            return
        if self._started:
            self._conn.send(message)
        else:
            self._pending.append(message)

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
