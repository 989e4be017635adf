"""The train step's Bytewax hooks: `TrainLogic`, one per model group (one writer per group).

Each hook is a few calls into the modules that hold the work, on the group's `GroupRuntime`:

- start: `reconcile.at_start` (a resume in line with the registry), then `live.sync`;
- ``on_item`` (a served micro-batch): decisions waiting in the outbox, and labels that outlived
  the window (`examples.expired`); the batch's labelled examples as one job (`examples.next_job`);
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
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulLogic

from dataflows.jobs import Job
from dataflows.lanes import Lane
from dataflows.serve import ServedBatch
from dataflows.train import canary, evidence, examples, lifecycle, live, reconcile, restart
from dataflows.train.state import GroupRuntime, GroupState, TrainContext, TrainOutput

__all__ = ["WAKE", "TrainLogic"]

log = logging.getLogger("headwater")

WAKE = timedelta(milliseconds=10)  # how soon to look again for results while lanes are busy (50: parity -0.5 pt)


class TrainLogic(StatefulLogic[ServedBatch, TrainOutput, GroupState]):
    """Bytewax stateful logic for one group's training, gating and promotion."""

    def __init__(self, state: GroupState, ctx: TrainContext) -> None:
        self.rt = GroupRuntime(state, ctx)
        reconcile.at_start(self.rt)
        live.sync(self.rt)

    @property
    def state(self) -> GroupState:
        return self.rt.state

    @property
    def ctx(self) -> TrainContext:
        return self.rt.ctx

    @property
    def lanes(self) -> dict[str, Lane]:
        return self.rt.lanes

    def on_item(self, value: ServedBatch) -> tuple[Iterable[TrainOutput], bool]:
        rt, now = self.rt, self.ctx.clock()
        out: list[TrainOutput] = [*rt.take_outbox(), *examples.expired(rt, now)]
        job, evicted = examples.next_job(rt, value, now)
        out.extend(evicted)
        if self.ctx.config.gate.threaded:
            out.extend(self._collect(now))
            self._submit(job)
            live.await_live(rt, job)
        else:  # inline: the job is done as it is submitted, and collected at once
            self._submit(job)
            out.extend(self._collect(now))
        return out, StatefulLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[TrainOutput], bool]:
        rt, now = self.rt, self.ctx.clock()
        out: list[TrainOutput] = [*rt.take_outbox(), *examples.expired(rt, now)]
        out.extend(self._collect(now))
        return out, StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if self.state.outbox or any(lane.backlog or lane.has_results for lane in self.lanes.values()):
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
            out.extend(examples.drained(self.rt))
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
        if job is not None:
            for lane in self.lanes.values():
                lane.submit(job)

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
        live.sync(rt)
        return out
