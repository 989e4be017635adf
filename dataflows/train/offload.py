"""The train step on a thread of its own, so that nothing of it runs between two serve calls.

Bytewax runs a stateful step on the worker that owns its key, and that worker also serves the
partitions it reads. `TrainThread` keeps the Bytewax hooks on the worker (they only hand over and
collect) and runs the group's `TrainLogic` on a thread of its own, in the order the hooks were
called: label joins, collecting the lanes' results, verdicts, registry writes, promotions (a clone
and a checkpoint), golden checks. The worker goes on serving meanwhile.

Two hooks wait for the thread, because Bytewax needs their answer at once:

- ``snapshot`` (at each epoch's end, with a recovery store): everything handed over before it is
  done first, so the snapshot holds exactly the batches of the epochs it closes (the input offsets
  of the same snapshot point after them), and its copies are made there;
- ``on_eof``: the end of the input waits for the last job, as `TrainLogic.on_eof` does.

What the thread produces (reports, verdicts, decisions, dead letters) is handed on at the next hook
call; the worker looks every `POLL` while the thread has work. An exception on the thread is raised
on the worker at its next hook call, so the flow stops as it would have inline.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, TimeoutError
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators import StatefulLogic

from dataflows.serve import ServedBatch
from dataflows.train.state import GroupState, TrainOutput
from dataflows.train.step import TrainLogic

__all__ = ["POLL", "TrainThread"]

log = logging.getLogger("headwater")

POLL = timedelta(milliseconds=10)  # how soon the worker looks again for what the thread produced

_Message = tuple[str, Any, "Future[Any] | None"]


class TrainThread(StatefulLogic[ServedBatch, TrainOutput, GroupState]):
    """`TrainLogic`, built by ``build`` and driven on a thread of its own (see the module's doc)."""

    def __init__(self, build: Callable[[], TrainLogic], *, group: str, recovery: bool) -> None:
        self._inbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._out: list[TrainOutput] = []
        self._lock = threading.Lock()
        self._group = group
        self._recovery = recovery
        self._ended = False
        self._error: BaseException | None = None
        started: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(build, started), name=f"headwater-train-{group}", daemon=True
        )
        self._thread.start()
        started.result()  # a resume that does not fit the config fails here, on the worker, as inline

    # -- Bytewax hooks (the worker thread) ------------------------------------------------------

    def on_item(self, value: ServedBatch) -> tuple[Iterable[TrainOutput], bool]:
        self._send("item", value)
        return self._drain(), StatefulLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[TrainOutput], bool]:
        return self._drain(), StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        # Not after the end of the input: Bytewax calls ``on_eof`` again at every activation once
        # its input is over, and a notification keeps activating it.
        return None if self._ended else datetime.now(UTC) + POLL

    def on_eof(self) -> tuple[Iterable[TrainOutput], bool]:
        if not self._ended:  # once: the lanes are closed by then
            self._call("eof")
            self._ended = True
        return self._drain(), StatefulLogic.RETAIN

    def snapshot(self) -> GroupState | None:  # type: ignore[override]
        if not self._recovery:  # nothing would read it (`TrainLogic.snapshot`): no wait for the thread
            self._raise()
            return None
        state: GroupState | None = self._call("snapshot")
        return state

    # -- the train thread ----------------------------------------------------------------------

    def _run(self, build: Callable[[], TrainLogic], started: Future[None]) -> None:
        try:
            logic = build()
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(None)
        while True:
            at = logic.notify_at()  # what it asked to be woken for: lane results, a label's expiry
            timeout = None if at is None else max(0.0, (at - datetime.now(UTC)).total_seconds())
            try:
                kind, value, done = self._inbox.get(timeout=timeout)
            except queue.Empty:
                kind, value, done = "notify", None, None
            try:
                result: Any = None
                if kind == "item":
                    self._emit(logic.on_item(value)[0])
                elif kind == "notify":
                    self._emit(logic.on_notify()[0])
                elif kind == "eof":
                    self._emit(logic.on_eof()[0])
                else:  # snapshot
                    result = logic.snapshot()
            except BaseException as exc:
                log.exception("group %s: the train step failed on its thread", self._group)
                with self._lock:
                    self._error = exc
                if done is not None:
                    done.set_exception(exc)
                return
            if done is not None:
                done.set_result(result)

    # -- between the two ------------------------------------------------------------------------

    def _emit(self, out: Iterable[TrainOutput]) -> None:
        items = list(out)
        if items:
            with self._lock:
                self._out.extend(items)

    def _drain(self) -> list[TrainOutput]:
        self._raise()
        with self._lock:
            out, self._out = self._out, []
        return out

    def _raise(self) -> None:
        if self._error is not None:
            msg = f"group {self._group}: the train step failed on its thread: {self._error!r}"
            raise RuntimeError(msg) from self._error

    def _send(self, kind: str, value: Any = None, done: Future[Any] | None = None) -> None:
        self._raise()
        self._inbox.put((kind, value, done))

    def _call(self, kind: str) -> Any:
        done: Future[Any] = Future()
        self._send(kind, None, done)
        try:
            while True:  # the thread may have died with this message still queued behind the failure
                try:
                    return done.result(timeout=0.1)
                except TimeoutError:
                    if not self._thread.is_alive():
                        self._raise()
                        msg = "the train step's thread ended"
                        raise RuntimeError(msg) from None
        except BaseException as exc:
            msg = f"group {self._group}: the train step failed on its thread: {exc!r}"
            raise RuntimeError(msg) from exc
