"""Serving asks a process lane's model: the question side of live refresh from a process.

A refresh fork's model in a process lane never comes back to the serving process (a grown
Hoeffding tree takes 13 ms to unpickle, in the serving process's GIL). Serving asks the process
instead, over a pipe of its own, through a `LiveModel` on the board (`ServingBoard.refresh`); the
process answers with the model as it is then (`dataflows.lanes.child`).

`Questions` is the serving process's end of that pipe. At most one question is on its way: one
given up on and still owed makes the next ones `Unavailable` at once (waiting for it would cost
every batch its whole deadline). A question that fits an empty pipe is sent from the asking thread;
a larger one through a thread of its own, and answers come back through another, so neither side
blocks on a full pipe (`bench/live_ask.py`).
"""

from __future__ import annotations

import queue
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np

from dataflows.serve import Unavailable
from learners import Artifact
from learners.base import FloatArray, IntArray

if TYPE_CHECKING:
    from dataflows.lanes.process import ProcessLane

__all__ = ["Answer", "LiveModel", "Questions"]

_SENT_IN_PLACE = 32 * 1024  # bytes: a question at most this large fits an empty pipe (Linux: ~200 kB)

Answer = tuple[FloatArray | None, str | None, bool]  # probabilities, error, unavailable


class LiveModel:
    """A process lane's model as serving sees it on the board: each `predict_proba` asks the
    lane's process (`ProcessLane.ask`). It only predicts: it is never taught, copied or saved."""

    remote = True  # it answers from another process: a vote asks such members at once (`Portfolio`)

    def __init__(self, lane: ProcessLane, version: str, answer_s: float) -> None:
        self.lane, self.version, self.answer_s = lane, version, answer_s
        self.n_features = lane.learner.n_features
        self.n_classes = lane.learner.n_classes

    def predict_proba(self, x: FloatArray) -> FloatArray:
        return self.lane.ask(self.version, x, self.answer_s)

    def learn(self, x: FloatArray, y: IntArray) -> None:
        msg = "a live model only predicts: its lane's process learns"
        raise NotImplementedError(msg)

    def clone(self, *, include_state: bool = False) -> Self:
        msg = "a live model is never copied: its lane's is (`ProcessLane.frozen`)"
        raise NotImplementedError(msg)

    def save(self, directory: Path) -> Artifact:
        msg = "a live model is never saved: its lane's is (`ProcessLane.store`)"
        raise NotImplementedError(msg)

    @classmethod
    def load(cls, artifact: Artifact) -> Self:
        msg = "a live model is never loaded"
        raise NotImplementedError(msg)


class Questions:
    """The serving process's end of lane ``name``'s question pipe (``conn``), with the two threads
    that write large questions and read answers. The lane orders `ask` with its own changes."""

    def __init__(self, name: str, conn: Connection) -> None:
        self.name = name
        self.conn = conn
        # Questions go through this queue to a thread of their own, and answers come back through
        # another: serving never blocks on a pipe whose reader is in the middle of a piece of
        # learning, and the process never on an answer that nobody reads.
        self._questions: queue.SimpleQueue[bytes | memoryview | None] = queue.SimpleQueue()
        self._answer_cond = threading.Condition()
        self._answer: Answer = (None, None, False)
        self._answers_ended = False
        self._ticket = self._answered = 0
        for target, role in ((self._write_questions, "ask"), (self._read_answers, "answers")):
            threading.Thread(target=target, name=f"headwater-lane-{name}-{role}", daemon=True).start()

    def ask(self, version: str, x: FloatArray, deadline: float, answer_s: float) -> Answer:
        """Ask the process what the model it holds as ``version`` gives ``x``; wait for the answer
        until ``deadline`` (monotonic). Raises `Unavailable` when an earlier answer is still owed or
        none came in time (``answer_s``: the bound, for the message), RuntimeError when the pipe
        ended. One question at a time: the caller holds its lane's question lock."""
        with self._answer_cond:
            # At most one question is on its way: while one given up on is still owed, the
            # champion serves at once (waiting for it would cost every batch its whole deadline).
            if self._answered < self._ticket:
                msg = f"lane {self.name}'s process still owes the answer to an earlier question"
                raise Unavailable(msg)
            self._ticket += 1
            ticket = self._ticket
        question = ForkingPickler.dumps((ticket, version, np.ascontiguousarray(x, dtype=np.float64)))
        if len(question) <= _SENT_IN_PLACE:
            # The process has read every earlier question (it answered them), so the pipe is
            # empty and a question this small fits: sent from here, without a thread hand-off.
            self.conn.send_bytes(question)
        else:
            self._questions.put(question)
        with self._answer_cond:
            answered = self._answer_cond.wait_for(
                lambda: self._answered >= ticket or self._answers_ended, max(0.0, deadline - time.monotonic())
            )
            if self._answered < ticket:
                if answered:  # the pipe ended: the process is gone
                    msg = f"lane {self.name}: its process ended while asked"
                    raise RuntimeError(msg)
                msg = f"lane {self.name}'s process did not answer within {1000 * answer_s:.0f} ms"
                raise Unavailable(msg)
            return self._answer

    def stop_writing(self) -> None:
        """End the thread that writes large questions (the lane is closing)."""
        self._questions.put(None)

    def close(self) -> None:
        self.conn.close()

    def _read_answers(self) -> None:
        while True:
            try:
                ticket, proba, error, unavailable = self.conn.recv()  # the lane's own process, over its own pipe
            except (EOFError, OSError, ValueError):
                with self._answer_cond:
                    self._answers_ended = True
                    self._answer_cond.notify_all()
                return
            with self._answer_cond:
                self._answered, self._answer = ticket, (proba, error, unavailable)
                self._answer_cond.notify_all()

    def _write_questions(self) -> None:
        while (question := self._questions.get()) is not None:
            try:
                self.conn.send_bytes(question)
            except (OSError, ValueError):  # the process or the pipe is gone: `ask` sees it
                return
