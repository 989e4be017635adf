"""Training: one writer per model group joins labels, hands the labelled examples to every model's
lane, collects what the lanes did, feeds the gate, and has the promoter act on its verdicts.

Per served micro-batch (events already predicted, and delayed labels):
1. labels that waited longer than the window for their event are dead-lettered;
2. labelled examples are gathered — inline labels, and delayed labels joined to the features
   logged when the event was served — and unlabelled features wait in the join;
3. one `Job` with those examples (and the input offsets the batch covered) goes to every lane:
   the champion's lane only scores (the champion never learns: what serves is frozen), the
   candidates' lanes score then learn, the standby's (the previous champion, on probation) scores;
4. whatever the lanes finished meanwhile is collected: a `ModelReport` per model and batch, the
   learning recorded in the registry (offset lineage), and the paired scores fed to each trial;
5. verdicts that changed are published; the gate's actions (promote, refuse, roll back, retire the
   standby, start a trial over) are carried out through the promoter.

The step never waits for a lane except at the end of the input: serving goes on while models learn.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np
from bytewax.operators import StatefulLogic

from dataflows.jobs import Job, LaneState
from dataflows.labels import Pending
from dataflows.lanes import Lane, LiveRefresh
from dataflows.ports import OffsetRange
from dataflows.records import DeadLetter, DeadLetterReason, DecisionRecord, Label, SourceRef
from dataflows.serve import ServedBatch
from dataflows.train import canary, evidence, lifecycle, restart
from dataflows.train.state import GroupRuntime, GroupState, Slot, TrainContext, TrainOutput, decision_record
from dataflows.train.trials import (
    CHAMPION_SLOT,
    RESTART_SLOT,
    STANDBY_SLOT,
    new_trial,
    probation,
)
from evaluators import PrequentialScore, RefreshEvaluator

__all__ = ["TrainLogic"]

log = logging.getLogger("headwater")

WAKE = timedelta(milliseconds=10)  # how soon to look again for results while lanes are busy (50: parity -0.5 pt)


class TrainLogic(StatefulLogic[ServedBatch, TrainOutput, GroupState]):
    """Bytewax stateful logic for one group's training, gating and promotion."""

    def __init__(self, state: GroupState, ctx: TrainContext) -> None:
        self.rt = GroupRuntime(state, ctx)
        state.canary = None  # a board starts without a canary: the trial's snapshot is published anew
        self._replay_decisions()
        self._reconcile_champion()
        self._reconcile_standby()
        self._reconcile_candidates()
        self._retire_orphans()
        self._sync_live()

    @property
    def state(self) -> GroupState:
        return self.rt.state

    @property
    def ctx(self) -> TrainContext:
        return self.rt.ctx

    @property
    def lanes(self) -> dict[str, Lane]:
        return self.rt.lanes

    # -- Bytewax hooks ------------------------------------------------------------------------

    def on_item(self, value: ServedBatch) -> tuple[Iterable[TrainOutput], bool]:
        now = self.ctx.clock()
        out: list[TrainOutput] = [*self.rt.take_outbox(), *(_unmatched(label) for label in self.state.join.expire(now))]
        job, evicted = self._job(value, now)
        out.extend(_unmatched(label) for label in evicted)
        if self.ctx.config.gate.threaded:
            # Collect first, then hand the new job out: once the lanes' threads are busy with it,
            # they compete with this (serving) thread for the GIL.
            out.extend(self._collect(now))
            self._submit(job)
            self._await_live(job)
        else:  # inline: the job is done as it is submitted, and collected at once
            self._submit(job)
            out.extend(self._collect(now))
        return out, StatefulLogic.RETAIN

    def _submit(self, job: Job | None) -> None:
        if job is not None:
            for lane in self.lanes.values():
                lane.submit(job)

    def _await_live(self, job: Job | None) -> None:
        """With live refresh, wait (at most ``live_refresh_wait_ms``) for the live fork's lane to
        learn ``job`` and hand its state to serving: the next micro-batch is then served by a model
        that learned every label that came before it, as the learner alone would be. Without the
        wait, serving runs a batch or two behind the labels (a micro-batch of staleness costs a
        learner on an incrementally drifting stream about 0.3 point: `bench/results/parity-live.md`).
        A slow lane holds serving back by the bound at most, and is then handed over to as before."""
        wait_s = self.ctx.config.gate.live_refresh_wait_ms / 1000
        if job is None or not len(job) or wait_s <= 0:
            return
        for lane in self.lanes.values():
            # Also while its copies rest (the rest often ends while it learns this job) and when it
            # is behind (serving then slows, by the bound at most, and lets it catch up): skipping
            # either took the parity bench from 10 of 12 pairs to 8 and 9 (torch-mlp on RBF).
            # A process lane does not wait (`ProcessLane.await_live`).
            lane.await_live(wait_s)

    def on_notify(self) -> tuple[Iterable[TrainOutput], bool]:
        now = self.ctx.clock()
        out: list[TrainOutput] = [*self.rt.take_outbox(), *(_unmatched(label) for label in self.state.join.expire(now))]
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
        now = self.ctx.clock()
        out = self._collect(now)
        self.rt.flush_lineage()
        if self.ctx.drain_on_eof:
            out.extend(_unmatched(label) for label in self.state.join.drain())
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

    # -- labelled examples ----------------------------------------------------------------------

    def _job(self, served: ServedBatch, now: float) -> tuple[Job | None, list[Label]]:
        state, join = self.state, self.state.join
        rows_x: list[list[float]] = []
        rows_y: list[int] = []
        rows_route: list[int] = []
        sources: list[SourceRef] = [e.source for e in served.events] + [label.source for label in served.labels]
        for e, route, predicted in zip(served.events, served.routes, served.predicted, strict=True):
            if e.label is not None:
                rows_x.append(e.x)
                rows_y.append(e.label)
                rows_route.append(route)
            elif self.ctx.delayed_labels:
                early = join.add_features(e.id, Pending(e.x, {"route": route, "served": predicted}, now, e.source))
                if early is not None:
                    rows_x.append(e.x)
                    rows_y.append(early.label)
                    rows_route.append(route)
        evicted: list[Label] = []
        for label in served.labels:
            pending, dropped = join.add_label(label, now)
            evicted.extend(dropped)
            if pending is not None:
                rows_x.append(pending.x)
                rows_y.append(label.label)
                rows_route.append(pending.preds.get("route", 0))
                sources.append(pending.source)
        if not sources:
            return None, evicted
        state.seq += 1
        n_features = len(state.features)
        x = np.asarray(rows_x, dtype=np.float64).reshape(-1, n_features)
        y = np.asarray(rows_y, dtype=np.int64)
        if state.reservoir is not None and len(y):
            state.reservoir.add(x, y)
        job = Job(state.seq, x, y, np.asarray(rows_route, dtype=np.int8), _ranges(sources))
        return job, evicted

    # -- results, evidence, decisions -----------------------------------------------------------

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
        self._sync_live()
        return out

    def _sync_live(self) -> None:
        """Live refresh: the first refresh fork's lane serves what it learns while its trial shows
        it not worse than the champion (`RefreshEvaluator.may_serve`); after a refusal, once its new
        trial has shown it so (also while it waits to be judged, `_live_fork`).
        Otherwise the champion itself serves. A process lane serves by answering serving's
        questions in its process (`dataflows.lanes.ask.LiveModel`), published as it is set live,
        and taken off the board if that process dies."""
        gate = self.ctx.config.gate
        if not gate.live_refresh:
            return
        group, champion = self.state.name, self.lanes[CHAMPION_SLOT].version
        forks = [n for n, s in self.state.slots.items() if s.spec is not None and s.spec.gate == "refresh"]
        lane = self.lanes[forks[0]] if forks else None
        if lane is None or not lane.serves:
            return
        slot, live = self.state.slots[lane.name], lane.live
        trial = slot.trial
        if live is not None and live.error is not None:
            self.rt.uncopyable.add(live.fork)
        may = (
            trial is not None and lane.version not in self.rt.uncopyable
            and not lane.dead  # a dead process answers nothing
            and isinstance(trial.evaluator, RefreshEvaluator) and trial.evaluator.may_serve(proven=slot.refusals > 0)
        )  # fmt: skip
        current = live is not None and live.champion == champion and live.fork == lane.version
        if live is not None and not (may and current):
            # Off, or for another fork or champion (a refused fork's state must not serve until the
            # new fork's first handover): nothing of it serves from now on.
            lane.set_live(None)
            self.ctx.promoter.serve_fresh(group, champion=champion, version=None, learner=None)
        if may and not current:
            lane.set_live(LiveRefresh(self.ctx.promoter, group, champion, lane.version, gate.live_refresh_budget))

    def _replay_decisions(self) -> None:
        """Decisions the registry recorded after the snapshot this state was resumed from: the
        crash may have come before they reached the model-events topic (a promotion is written to
        the registry first), so they are emitted again, after those it had not emitted yet. At
        least once, as all output."""
        state = self.state
        if state.decided is None:
            return
        missed = self.ctx.registry.decisions(state.name, skip=state.decided)
        if missed:
            log.info("group %s: %d decision(s) made after the snapshot are emitted again", state.name, len(missed))
        state.outbox.extend(decision_record(d) for d in missed)
        state.decided = None

    def _reconcile_champion(self) -> None:
        """After a restart the registry, not the snapshot, says who serves: a promotion may have
        happened after the last snapshot. Then the trials start over."""
        ctx, state = self.ctx, self.state
        serving = ctx.promoter.serving(state.name)
        if serving is None:
            return
        version, learner = serving
        champion = self.lanes[CHAMPION_SLOT]
        if champion.version == version:
            return
        log.warning("group %s: the snapshot's champion is %s, the registry's %s: serving %s",
                    state.name, champion.version, version, version)  # fmt: skip
        champion.replace(version, learner, learns=False)
        state.change.reset()
        state.trusted, state.champion_through = None, 0
        self.rt.new_trials()
        # As after a promotion: the forks start again from the champion that serves.
        state.outbox.extend(
            r for r in lifecycle.refork(self.rt, int(ctx.clock() * 1000)) if isinstance(r, DecisionRecord)
        )

    def _reconcile_standby(self) -> None:
        """The standby is the registry's (the last good version, kept for a rollback): a
        promotion or a retirement after the snapshot changed it. Its probation starts over."""
        ctx, state = self.ctx, self.state
        standbys = [v.id for v in ctx.registry.versions(state.name) if v.status == "standby"]
        wanted = standbys[-1] if standbys else None
        held = self.lanes[STANDBY_SLOT].version if STANDBY_SLOT in self.lanes else None
        if held == wanted:
            return
        if held is not None:
            self.lanes.pop(STANDBY_SLOT).close()
            del state.slots[STANDBY_SLOT]
        if wanted is not None:
            lane = LaneState(wanted, ctx.registry.load_checkpoint(wanted), False)
            state.slots[STANDBY_SLOT] = Slot(
                STANDBY_SLOT, "standby", lane, PrequentialScore(ctx.config.rolling_window), trial=probation(ctx.config)
            )
            self.lanes[STANDBY_SLOT] = self.rt.open_lane(STANDBY_SLOT, lane)

    def _retire_orphans(self) -> None:
        """Candidate versions no lane holds (made after the snapshot the flow resumed from, or by
        a run whose state is gone) will never learn again: they are retired."""
        ctx, state = self.ctx, self.state
        held = {lane.version for lane in self.lanes.values()}
        now_ms = int(ctx.clock() * 1000)
        for info in ctx.registry.versions(state.name):
            if info.status == "candidate" and info.id not in held:
                reason = "no model learns as this version since the restart (it was made after the snapshot resumed)"
                decision = ctx.promoter.retire(state.name, version=info.id, reason=reason, evidence={}, ts_ms=now_ms)
                state.outbox.append(decision_record(decision))

    def _reconcile_candidates(self) -> None:
        """A candidate promoted or refused after the snapshot learns on as a new version: the
        decided version's lineage ended with the decision."""
        ctx, state = self.ctx, self.state
        now_ms = int(ctx.clock() * 1000)
        restarted = self.lanes.get(RESTART_SLOT)
        if restarted is not None and ctx.registry.version(restarted.version).status != "candidate":
            # Promoted (the forks go on from it) or refused after the snapshot: its turn is over.
            restart.drop(self.rt, "decided after the snapshot", now_ms, retire=False)
        for name, slot in state.slots.items():
            lane = self.lanes[name]
            if slot.spec is None or ctx.registry.version(lane.version).status == "candidate":
                continue
            lane.rename(self.rt.successor(name, now_ms))
            if slot.spec is not None:
                slot.trial = new_trial(ctx.config, slot.spec)


def _ranges(sources: list[SourceRef]) -> tuple[OffsetRange, ...]:
    """The offsets of ``sources`` as contiguous runs per topic partition: a delayed label's event,
    read long before, is a run of its own — not a stretch over everything in between."""
    offsets: dict[tuple[str, int], list[int]] = {}
    for s in sources:
        offsets.setdefault((s.topic, s.partition), []).append(s.offset)
    runs: list[OffsetRange] = []
    for (topic, partition), values in offsets.items():
        ordered = sorted(set(values))
        first = last = ordered[0]
        for offset in ordered[1:]:
            if offset > last + 1:
                runs.append(OffsetRange(topic, partition, first, last))
                first = offset
            last = offset
        runs.append(OffsetRange(topic, partition, first, last))
    return tuple(sorted(runs))


def _unmatched(label: Label) -> DeadLetter:
    detail = (
        f"no unlabelled event with id {label.id!r} was waiting for it within the label window "
        "(the event never came, came earlier than the window, or was already labelled)"
    )
    return DeadLetter(DeadLetterReason.LABEL_UNMATCHED, detail, label.source, label.original)
