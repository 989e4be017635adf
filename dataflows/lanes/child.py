"""The process lane's other side: the server its processes fork from, and what runs in each.

Lanes' processes fork from a forkserver that has imported Headwater (and the learners' modules)
once: a new lane starts in milliseconds instead of paying seconds of imports, and the server is
single-threaded, so forking it is safe (forking the serving process, which has threads, is not).
Importing this module starts nothing and sets nothing: `start_lane_server` does, and every process
lane calls it before its first fork.

In the child, `_child` reads the parent's messages (a model, a rename, a job, a request for the
model, close) in order, and — for a lane that serves — serving's questions on a pipe of their own,
answered first whenever both wait, and between the pieces of a job (`dataflows.jobs.run_job`).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Iterable
from multiprocessing import forkserver
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

from dataflows.jobs import run_job

__all__ = ["CONTEXT", "lane_process", "start_lane_server", "yield_cpu"]

CONTEXT = multiprocessing.get_context("forkserver")  # an object: nothing starts until a process does
_SERVER_MODULE = "dataflows.lanes.child"  # what the server imports for every lane (this module and its own)
_SERVER_LOCK = threading.Lock()
_SERVER_STARTED = False
_TORCH_THREADS = 1  # each lane's process: one learner per process, and no OpenMP team to wait on


def start_lane_server(modules: Iterable[str] = (), *, torch_threads: int = 1) -> None:
    """Start the server that lanes' processes fork from, and wait until it has imported
    ``modules`` (the learners' modules) and can fork.

    A daemon calls this at start-up, before it serves anything: its first candidates then start
    in milliseconds instead of importing for seconds behind serving (they run below it). Once the
    server runs, later calls change nothing (a lane imports what the server lacks itself).
    ``torch_threads``: PyTorch's intra-op threads in each lane's process, fixed with the server.
    """
    global _SERVER_STARTED, _TORCH_THREADS
    with _SERVER_LOCK:
        if not _SERVER_STARTED:
            _TORCH_THREADS = torch_threads
            preload = [_SERVER_MODULE, *sorted(set(modules)), *_main_module()]
            if "learners.torch_learner" in preload:
                preload.append("torch._dynamo")  # imported on building the first optimizer: seconds
            CONTEXT.set_forkserver_preload(preload)
            ready = CONTEXT.Process(target=_ready, name="headwater-lane-server-ready", daemon=True)
            ready.start()  # returns once the server has imported and forked
            ready.join()
            _SERVER_STARTED = True
        forkserver.ensure_running()  # at once if running; again if it died


def _main_module() -> list[str]:
    """The main module, by name, when every lane's process would import it again: a process forked
    from the server imports the parent's main module first (multiprocessing's "prepare"), and with
    its imports not in the server that took a third of a second a lane (a daemon started as
    ``python -m``). Imported once in the server, it is there already. A main run as a file (a console
    script) has no name to give: its caller names what it imports (`daemon.runner`)."""
    name = getattr(getattr(sys.modules.get("__main__"), "__spec__", None), "name", None)
    return [] if not name or name == "__main__" or name.endswith(".__main__") else [name]


def lane_process(conn: Connection, asked: Connection | None, name: str) -> BaseProcess:
    """Lane ``name``'s process, not started yet (it forks from the server once started): the
    parent's messages on ``conn``, serving's questions on ``asked`` (None: the lane does not serve)."""
    return CONTEXT.Process(
        target=_child, args=(conn, asked, name, _TORCH_THREADS), name=f"headwater-lane-{name}", daemon=True
    )


def _ready() -> None:  # pragma: no cover - runs in the child process
    """Nothing: a process forked only to know that the server can fork."""


def yield_cpu() -> None:
    """Lower the calling thread below serving: Linux's SCHED_IDLE runs it only on CPU time that
    nothing else wants (nice 19 where the OS has no such policy)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


def _child(conn: Connection, asked: Connection | None, name: str, torch_threads: int) -> None:  # pragma: no cover
    """The lane's process: jobs and control messages on ``conn``; with ``asked`` (a lane that
    serves), serving's questions too, answered first whenever both wait."""
    if asked is None:
        yield_cpu()  # serving first: the learner runs on CPU time that serving leaves
    if "torch" in sys.modules:
        # A team of OpenMP threads in a process that runs on idle CPU only spins waiting for its
        # descheduled members: one thread each, unless the daemon was told otherwise.
        sys.modules["torch"].set_num_threads(torch_threads)
    lane = _Child(conn, asked, name)
    while not lane.closed:
        ready = wait([conn] if lane.asked is None else [lane.asked, conn])
        if lane.asked is not None and lane.asked in ready:
            lane.answer_waiting()
        elif conn in ready:
            lane.handle(conn.recv())  # the parent's own messages, over its own pipe


class _Child:  # pragma: no cover - runs in the child process
    def __init__(self, conn: Connection, asked: Connection | None, name: str) -> None:
        self.conn, self.asked, self.name = conn, asked, name
        # In the middle of a job, serving's questions are answered between its pieces.
        self.between = None if asked is None else self._answer_in_job
        self.learner: Any = None
        self.version, self.learns, self.closed = "", False, False

    def handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "model":
            _, self.version, self.learner, self.learns = message
        elif kind == "rename":
            self.version = message[1]
        elif kind == "job":
            job = message[1]
            self.conn.send(("result", run_job(self.name, self.version, self.learner, self.learns, job, self.between)))
        elif kind == "get":
            self.conn.send(("model", self.learner))
        elif kind == "close":
            self.conn.close()
            self.closed = True

    def _answer_in_job(self) -> None:
        self.answer_waiting(in_job=True)

    def answer_waiting(self, *, in_job: bool = False) -> None:
        """Every question waiting; a question pipe the parent closed is not looked at again."""
        try:
            while self.asked is not None and self.asked.poll():
                self.answer(self.asked, in_job=in_job)
        except (EOFError, OSError):
            self.asked = None

    def answer(self, asked: Connection, *, in_job: bool = False) -> None:
        """Serving's question: the probabilities the model gives now, if it is the version asked
        for. One the parent sent after a model or a rename still on its way here is answered
        after it: the messages waiting are handled first, in order (not in the middle of a job).
        An answer is (ticket, probabilities, error, unavailable)."""
        ticket, expected, x = asked.recv()
        while expected != self.version and not in_job and not self.closed and self.conn.poll():
            self.handle(self.conn.recv())
        if self.learner is None or expected != self.version:
            asked.send((ticket, None, f"the lane's process holds {self.version or 'no model'}, not {expected}", True))
            return
        try:
            asked.send((ticket, np.asarray(self.learner.predict_proba(x), dtype=np.float64), None, False))
        except Exception as exc:  # a user's model may fail to predict: serving falls back to the champion
            asked.send((ticket, None, f"{type(exc).__name__}: {exc}", False))
