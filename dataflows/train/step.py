"""The train step's Bytewax hooks: `TrainLogic`, one per model group (one writer per group), run
inline or on a thread of its own (`TrainThread`).

`TrainLogic`'s hooks are each a few calls into the modules that hold the work, on the group's
`GroupRuntime`:

- start: `reconcile.at_start` (a resume in line with the registry), `commands.restore` (what
  operators' commands hold, as the registry's command log says), then `live.sync`;
- ``on_item`` (an operator's command, `dataflows.control`): the lanes' results so far are
  collected, then `commands.apply`; candidates whose replay has read its stretches join at each
  collect (`replays.adopt`);
- ``on_item`` (a served micro-batch): decisions waiting in the outbox, and labels that outlived
  the window (`evidence.expired`); the batch's labelled examples as one job (`evidence.next_job`);
  then, with threaded lanes, what the lanes finished is collected before the job is handed to every
  lane (once the lanes' threads are busy with it, they compete with this serving thread for the
  GIL), and the step waits for the live fork to learn it (`live.await_live`); inline lanes do the
  job as it is handed out, and it is collected at once;
- collecting, in order: the lanes' results as reports, lineage and pairs (`evidence.gather`), the
  lineage written when due, pairs fed to the trials (`evidence.feed`), a restart model that had its
  chance dropped (`restart.expire`), verdicts (`evidence.verdicts`), the actions they ask for
  (`lifecycle.carry_out`), the canary's snapshot (`canary.publish`), the live fork (`live.sync`);
- ``on_notify`` collects (every 10 ms while lanes are busy, `notify_at`) and expires labels;
- ``on_eof`` waits for the lanes (bounded), collects, and closes them;
- ``snapshot``: `GroupRuntime.take_snapshot`.

The step never waits for a lane except at the end of the input: serving goes on while models learn.

`TrainThread`: so that nothing of the step runs between two serve calls. Bytewax runs a stateful
step on the worker that owns its key, and that worker also serves the partitions it reads.
`TrainThread` keeps the Bytewax hooks on the worker (they only hand over and collect) and runs the
group's `TrainLogic` on a thread of its own, in the order the hooks were called: label joins,
collecting the lanes' results, verdicts, registry writes, promotions (a clone and a checkpoint),
golden checks. The worker goes on serving meanwhile. Two hooks wait for the thread, because Bytewax
needs their answer at once:

- ``snapshot`` (at each epoch's end, with a recovery store): everything handed over before it is
  done first, so the snapshot holds exactly the batches of the epochs it closes (the input offsets
  of the same snapshot point after them), and its copies are made there;
- ``on_eof``: the end of the input waits for the last job, as `TrainLogic.on_eof` does.

What the thread produces (reports, verdicts, decisions, dead letters) is handed on at the next hook
call; the worker looks every `POLL` while the thread has work. An exception on the thread is raised
on the worker at its next hook call, so the flow stops as it would have inline.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, TimeoutError
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators import StatefulLogic

from dataflows.control import Command
from dataflows.jobs import Job
from dataflows.lanes import Lane
from dataflows.serve import ServedBatch
from dataflows.train import (
    canary,
    commands,
    evidence,
    lifecycle,
    live,
    quarantine,
    reconcile,
    replays,
    restart,
    vote,
)
from dataflows.train.state import GroupRuntime, GroupState, TrainContext, TrainOutput

__all__ = ["POLL", "WAKE", "TrainLogic", "TrainThread"]

log = logging.getLogger("headwater")

WAKE = timedelta(milliseconds=10)  # how soon to look again for results while lanes are busy (50: parity -0.5 pt)
POLL = timedelta(milliseconds=10)  # how soon the worker looks again for what the train thread produced

_Message = tuple[str, Any, "Future[Any] | None"]


class TrainLogic(StatefulLogic[ServedBatch | Command, TrainOutput, GroupState]):
    """Bytewax stateful logic for one group's training, gating and promotion."""

    def __init__(self, state: GroupState, ctx: TrainContext) -> None:
        self.rt = GroupRuntime(state, ctx)
        reconcile.at_start(self.rt)
        commands.restore(self.rt)
        live.sync(self.rt)
        vote.sync(self.rt, int(self.ctx.clock() * 1000))
        quarantine.start(self.rt)
        self.rt.vote_sent = None  # not emitted from here: the first collect sends the vote as it stands

    @property
    def state(self) -> GroupState:
        return self.rt.state

    @property
    def ctx(self) -> TrainContext:
        return self.rt.ctx

    @property
    def lanes(self) -> dict[str, Lane]:
        return self.rt.lanes

    def on_item(self, value: ServedBatch | Command) -> tuple[Iterable[TrainOutput], bool]:
        rt, now = self.rt, self.ctx.clock()
        out: list[TrainOutput] = [*rt.take_outbox(), *evidence.expired(rt, now)]
        if isinstance(value, Command):  # an operator's, in order with the data
            out.extend(self._collect(now))  # what the lanes did before it is judged as before it
            out.extend(commands.apply(rt, value, int(now * 1000)))
            live.sync(rt)
            out.extend(vote.sync(rt, int(now * 1000)))
            if rt.released:  # the labels an operator released from quarantine
                jobs, rt.released = rt.released, []
                self._hand_out(jobs, out, now)
            return out, StatefulLogic.RETAIN
        job, evicted = evidence.next_job(rt, value, now)
        out.extend(evicted)
        jobs, said = quarantine.screen(rt, job, int(now * 1000))
        out.extend(said)
        released, rt.released = rt.released, []  # an operator's release, applied again after a restart
        self._hand_out([*released, *jobs], out, now)
        return out, StatefulLogic.RETAIN

    def _hand_out(self, jobs: list[Job], out: list[TrainOutput], now: float) -> None:
        """``jobs`` to every lane, and what the lanes finished meanwhile into ``out``."""
        if not jobs:
            out.extend(self._collect(now))
            return
        for job in jobs:
            vote.submitted(self.rt, job)
            if self.ctx.config.gate.threaded:
                out.extend(self._collect(now))
                self._submit(job)
                live.await_live(self.rt, job)
            else:  # inline: the job is done as it is submitted, and collected at once
                self._submit(job)
                out.extend(self._collect(now))

    def on_notify(self) -> tuple[Iterable[TrainOutput], bool]:
        rt, now = self.rt, self.ctx.clock()
        out: list[TrainOutput] = [*rt.take_outbox(), *evidence.expired(rt, now)]
        out.extend(self._collect(now))
        return out, StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        busy = any(lane.backlog or lane.has_results for lane in self.lanes.values())
        if self.state.outbox or self.rt.replays or busy:
            return datetime.now(UTC) + WAKE
        at = self.state.join.next_expiry()
        return None if at is None else datetime.fromtimestamp(at, UTC)

    def on_eof(self) -> tuple[Iterable[TrainOutput], bool]:
        for lane in self.lanes.values():
            if not lane.wait_idle(timeout_s=300):
                log.warning("lane %s still busy at the end of the input; its work carries over", lane.name)
        out = self._collect(self.ctx.clock())
        self.rt.flush_lineage()
        if self.ctx.drain_on_eof:
            out.extend(evidence.drained(self.rt))
        self.close()  # the input is over: the lanes' threads end (a snapshot still reads them)
        return out, StatefulLogic.RETAIN

    def snapshot(self) -> GroupState | None:  # type: ignore[override]
        # Bytewax calls this at every epoch end, on the worker thread that serves, recovery store
        # or not. Without one, nothing would ever read the snapshot: it is not made.
        return self.take_snapshot() if self.ctx.config.recovery else None

    def take_snapshot(self) -> GroupState:
        """The group's state as a recovery snapshot holds it."""
        return self.rt.take_snapshot()

    def close(self) -> None:
        self.rt.close()

    def _submit(self, job: Job | None) -> None:
        if job is None:
            return
        paused = self.state.paused
        scored_only = dataclasses.replace(job, learn=False) if paused else job
        for name, lane in self.lanes.items():
            lane.submit(scored_only if name in paused else job)

    def _collect(self, now: float) -> list[TrainOutput]:
        """What the lanes finished, as reports, evidence, verdicts and decisions (in this order)."""
        rt, now_ms = self.rt, int(now * 1000)
        out = evidence.gather(rt, now_ms)
        rt.flush_lineage_if_due()
        evidence.feed(rt)
        out.extend(restart.expire(rt, now_ms))
        out.extend(evidence.verdicts(rt, now_ms))
        out.extend(lifecycle.carry_out(rt, now_ms))
        out.extend(canary.publish(rt, now_ms))
        out.extend(replays.adopt(rt, now_ms))
        live.sync(rt)
        out.extend(vote.sync(rt, now_ms))
        return out


class TrainThread(StatefulLogic[ServedBatch | Command, TrainOutput, GroupState]):
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

    def on_item(self, value: ServedBatch | Command) -> tuple[Iterable[TrainOutput], bool]:
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
