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
from typing import Any

import numpy as np
import numpy.typing as npt
from bytewax.operators import StatefulLogic

from dataflows.config import GoldenSet
from dataflows.jobs import Job, LaneResult, LaneState
from dataflows.labels import Pending
from dataflows.lanes import Lane, LiveRefresh
from dataflows.ports import OffsetRange
from dataflows.records import DeadLetter, DeadLetterReason, DecisionRecord, Label, ModelReport, SourceRef, VerdictRecord
from dataflows.serve import ServedBatch
from dataflows.train import canary, restart
from dataflows.train.state import GroupRuntime, GroupState, Slot, TrainContext, TrainOutput, decision_record
from dataflows.train.trials import (
    CHAMPION_SLOT,
    RESTART_SLOT,
    STANDBY_SLOT,
    Action,
    canary_part,
    is_live_fork,
    new_trial,
    next_actions,
    probation,
)
from evaluators import GoldenEvaluator, Paired, Phase, PrequentialScore, RefreshEvaluator, Verdict
from learners import Learner

__all__ = ["GOLDEN_MIN_SIZE", "TrainLogic"]

log = logging.getLogger("headwater")

WAKE = timedelta(milliseconds=10)  # how soon to look again for results while lanes are busy (50: parity -0.5 pt)
GOLDEN_MIN_SIZE = 50  # a golden set smaller than this checks nothing: promotions wait


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
        state, ctx = self.state, self.ctx
        now_ms = int(now * 1000)
        out: list[TrainOutput] = []
        for name, lane in list(self.lanes.items()):  # a drift may start or drop the restart lane (`_watch`)
            if self.lanes.get(name) is not lane:
                continue
            for result in lane.drain():
                out.extend(self._record(state.slots[name], lane, result, now_ms))
                state.pairing.add(result)
                if name == CHAMPION_SLOT and not result.skipped and len(result.correct):
                    out.extend(self._watch(result, now_ms))
        self.rt.flush_lineage_if_due()
        versions = {name: lane.version for name, lane in self.lanes.items()}
        oldest = state.seq - 4 * ctx.config.gate.max_lag_batches
        for name, paired, routes in state.pairing.pairs(versions, oldest):
            slot = state.slots.get(name)
            if slot is None or slot.trial is None:
                continue
            if slot.trial.wait > 0:  # refused not long ago: it learns on before it is judged again
                slot.trial.wait = max(0, slot.trial.wait - len(paired))
                if not is_live_fork(self.ctx.config.gate, slot.spec):
                    continue
            if slot.trial.kind == "canary":
                paired = canary_part(paired, routes)
            if len(paired):
                slot.trial.evaluator.update(paired)
        out.extend(restart.expire(self.rt, now_ms))
        out.extend(self._verdicts(now_ms))
        for action in next_actions({n: s.trial for n, s in state.slots.items() if s.trial is not None}):
            serving = self.lanes[CHAMPION_SLOT].version
            out.extend(self._act(action, now_ms))
            if self.lanes[CHAMPION_SLOT].version != serving:
                break  # every other trial starts over against the new champion
        out.extend(canary.publish(self.rt, now_ms))
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

    def _record(self, slot: Slot, lane: Lane, result: LaneResult, now_ms: int) -> list[TrainOutput]:
        state, ctx = self.state, self.ctx
        n = len(result.correct)
        if n:
            slot.score.update_hits(result.correct > 0.5, proba_true=result.proba_true)
        if result.ranges or result.learned:
            ranges, samples = self.rt.lineage.get(result.version, ((), 0))
            self.rt.lineage[result.version] = (ranges + result.ranges, samples + result.learned)
        ctx.metrics.learned(state.name, slot.name, result.learned, result.learn_ms / 1000, lane.backlog)
        if not (n or result.error or result.skipped):
            return []
        snap = slot.score.snapshot()
        join = state.join
        offsets: dict[str, list[int]] = {}  # first and last offset per partition (the registry keeps the runs)
        for r in result.ranges:
            span = offsets.setdefault(f"{r.topic}/{r.partition}", [r.first, r.last])
            span[0], span[1] = min(span[0], r.first), max(span[1], r.last)
        return [
            ModelReport(
                group=state.name, model=slot.name, version=result.version, role=slot.role, ts_ms=now_ms,
                batch=result.seq, n_labelled=n, n_learned=result.learned, n_correct=int(result.correct.sum()),
                accuracy=snap.accuracy, rolling_accuracy=snap.rolling_accuracy, rolling_log_loss=snap.rolling_log_loss,
                learn_ms=round(result.learn_ms, 3), lag_batches=lane.backlog, skipped_batches_total=lane.skipped_total,
                offsets=offsets, pending_features=join.pending_features, pending_labels=join.pending_labels,
                features_expired_total=join.features_expired_total, labels_unmatched_total=join.labels_unmatched_total,
                error=result.error,
            )
        ]  # fmt: skip

    def _verdicts(self, now_ms: int) -> list[TrainOutput]:
        out: list[TrainOutput] = []
        for slot in self.state.slots.values():
            trial = slot.trial
            if trial is None or (trial.wait > 0 and is_live_fork(self.ctx.config.gate, slot.spec)):
                continue  # judged once its wait is over, on all the evidence gathered since its refusal
            verdict = trial.evaluator.verdict()
            trial.verdict = verdict
            if verdict.phase is not trial.phase:
                trial.phase = verdict.phase
                out.append(self._verdict_record(slot, trial.kind, verdict, now_ms))
        return out

    def _verdict_record(
        self, slot: Slot, kind: str, verdict: Verdict, now_ms: int, *, version: str | None = None
    ) -> VerdictRecord:
        if version is None:
            # A probation judges the champion (against the standby): the verdict is the champion's.
            on = CHAMPION_SLOT if kind == "probation" else slot.name
            version = self.lanes[on].version
        evidence = dict(verdict.evidence)
        if kind == "probation" and STANDBY_SLOT in self.lanes:
            evidence["standby"] = self.lanes[STANDBY_SLOT].version
        self.ctx.registry.record_verdict(version, kind, verdict.phase.value, verdict.reason, evidence, now_ms)
        model = CHAMPION_SLOT if kind == "probation" else slot.name
        return VerdictRecord(
            group=self.state.name, model=model, version=version, evaluator=kind, phase=verdict.phase.value,
            reason=verdict.reason, evidence=evidence, ts_ms=now_ms,
        )  # fmt: skip

    def _watch(self, result: LaneResult, now_ms: int) -> list[TrainOutput]:
        """The frozen champion's correctness on fresh labels: when its mean moves, the data changed
        (a drift, or a burst of wrong labels). Evidence gathered before the change says nothing
        about the candidates after it: their trials start over (the probation goes on). When the
        champion got worse, a candidate refused against it no longer waits out its refusal: that
        evidence was gathered against a champion that is not what it was (on an abrupt change a
        frozen champion can serve a stale concept for the whole wait). When it got better (a burst
        of wrong labels ending), a refused candidate waits on: it may have learned the burst."""
        state = self.state
        if result.version != self.lanes[CHAMPION_SLOT].version:
            return []
        state.change.update(result.correct)
        change = state.change.last
        if not state.change.changed or change is None:
            return []
        reason = (
            f"the champion's accuracy on fresh labels moved from {change.before:.3f} to {change.after:.3f} "
            f"(ADWIN, delta {state.change.delta}): the data changed, every candidate's trial starts over"
        )
        dropped = change.after < change.before
        if dropped:
            reason += "; a refused candidate is judged again at once"
        log.warning("group %s: %s", state.name, reason)
        self.rt.new_trials(keep_waits=not dropped)
        verdict = Verdict(Phase.FAILED, reason, {"before": change.before, "after": change.after, "n": change.n})
        out: list[TrainOutput] = [self._verdict_record(state.slots[CHAMPION_SLOT], "drift", verdict, now_ms)]
        if dropped and self.ctx.config.gate.restart_on_drift:
            out.extend(restart.start(self.rt, now_ms))
        return out

    def _act(self, action: Action, now_ms: int) -> list[TrainOutput]:
        self.rt.flush_lineage()  # a decision is recorded with the lineage it was taken on
        if action.kind == "promote":
            return self._promote(action.slot, action.verdict, now_ms)
        if action.kind == "refuse":
            return self._refuse(action.slot, action.verdict.reason, dict(action.verdict.evidence), now_ms)
        if action.kind == "rollback":
            return self._rollback(action.verdict, now_ms)
        if action.kind == "retire_standby":
            return self._retire_standby(action.verdict, now_ms)
        if action.slot == RESTART_SLOT:  # new_trial: it had its chance
            return restart.drop(self.rt, f"not better than the champion: {action.verdict.reason}", now_ms)
        trial = self.state.slots[action.slot].trial
        if trial is not None:  # new_trial: the evidence so far is spent
            trial.evaluator.reset()
            trial.phase, trial.verdict = Phase.PENDING, None
        return []

    def _promote(self, name: str, verdict: Verdict, now_ms: int) -> list[TrainOutput]:
        state, ctx, group = self.state, self.ctx, self.state.name
        slot, lane = state.slots[name], self.lanes[name]
        kind = slot.trial.kind if slot.trial else "live"
        golden_set = self._golden_set()
        if golden_set is not None and len(golden_set[1]) < GOLDEN_MIN_SIZE:
            return []  # not enough trusted history to check against yet: the trial waits
        version = lane.version
        # The candidate's state is frozen and, at the same instant, what the lane learns from now on
        # belongs to its successor: the promoted version's lineage ends with its checkpoint.
        frozen = lane.freeze_as(self.rt.successor(name, now_ms))
        through = lane.frozen_through
        out: list[TrainOutput] = []
        golden = None if golden_set is None else self._golden_check(frozen, *golden_set)
        if golden is not None:
            out.append(self._verdict_record(slot, "golden", golden, now_ms, version=version))
            if golden.phase is not Phase.PASSED:
                reason = f"{name} {version} passed its {kind} trial but not the golden set: {golden.reason}"
                evidence = dict(verdict.evidence) | _prefixed("golden", golden)
                return out + self._refuse(name, reason, evidence, now_ms, version=version)
        champion = self.lanes[CHAMPION_SLOT]
        previous, previous_learner = champion.version, champion.learner
        evidence = dict(verdict.evidence) | ({} if golden is None else _prefixed("golden", golden))
        reason = f"{name} {version} passed its {kind} trial against {previous}: {verdict.reason}"
        decision = ctx.promoter.promote(
            group, version=version, learner=frozen, previous=previous, reason=reason, evidence=evidence, ts_ms=now_ms
        )
        out.append(decision_record(decision))
        ctx.metrics.decided(group, "promote")
        slot.refusals = 0
        champion.replace(version, frozen, learns=False, through=through)
        state.champion_through = through
        state.change.reset()  # a new champion: its errors are a new stream
        if STANDBY_SLOT in state.slots:
            # The champion just replaced never finished its probation: the standby stays the last
            # good version, and the new champion's probation is against it.
            standby = self.lanes[STANDBY_SLOT].version
            reason = f"replaced by {version} before its probation against {standby} ended"
            retired = ctx.promoter.retire(group, version=previous, reason=reason, evidence={}, ts_ms=now_ms)
            out.append(decision_record(retired))
            state.slots[STANDBY_SLOT].trial = probation(ctx.config, refresh=kind == "refresh")
        elif ctx.registry.version(previous).config.get("untrained"):
            # An untrained first champion was never good: there is nothing to roll back to.
            reason = f"replaced by {version}; never trained, so not kept for a rollback"
            retired = ctx.promoter.retire(group, version=previous, reason=reason, evidence={}, ts_ms=now_ms)
            out.append(decision_record(retired))
        else:
            window = ctx.config.rolling_window
            standby_lane = LaneState(previous, previous_learner, False)
            state.slots[STANDBY_SLOT] = Slot(
                STANDBY_SLOT, "standby", standby_lane, PrequentialScore(window),
                trial=probation(ctx.config, refresh=kind == "refresh"),
            )  # fmt: skip
            self.lanes[STANDBY_SLOT] = self.rt.open_lane(STANDBY_SLOT, standby_lane)
        self.rt.new_trials()
        out.extend(self._refork(now_ms, keep=name))
        if name == RESTART_SLOT:  # the forks go on from its state: a second learner of it would be waste
            out.extend(
                restart.drop(self.rt, f"its state {version} is the champion now; the forks go on from it", now_ms)
            )
        if state.reservoir is not None:
            state.trusted = state.reservoir.arrays()
        out.extend(canary.end(self.rt, "the champion changed", now_ms))
        return out

    def _refuse(
        self, name: str, reason: str, evidence: dict[str, Any], now_ms: int, *, version: str | None = None
    ) -> list[TrainOutput]:
        """Refuse the slot's version (or ``version``, already succeeded in its lane)."""
        state, ctx, group = self.state, self.ctx, self.state.name
        slot, lane = state.slots[name], self.lanes[name]
        succeeded = version is not None
        version = lane.version if version is None else version
        decision = ctx.promoter.refuse(group, version=version, reason=reason, evidence=evidence, ts_ms=now_ms)
        ctx.metrics.decided(group, "refuse")
        if name == RESTART_SLOT:  # no second chance: it is dropped (a newer change starts another)
            # The successor made as it was frozen never learned anything of its own: retired.
            dropped = restart.drop(self.rt, f"{version} was refused", now_ms, retire=succeeded)
            return [decision_record(decision), *dropped]
        # A fork starts again from the champion, but a live fork refused on live evidence: it learns on
        # (`_live_fork`). One that failed the golden set may have learned poisoned labels: it restarts.
        learns_on = not succeeded and is_live_fork(self.ctx.config.gate, slot.spec)
        retired: list[TrainOutput] = []
        if slot.spec is not None and slot.spec.fork and not learns_on:
            if succeeded:  # the successor it was handed to never learned anything of its own
                orphan = lane.version
                why = f"{version} was refused"
                retired.append(
                    decision_record(ctx.promoter.retire(group, version=orphan, reason=why, evidence={}, ts_ms=now_ms))
                )
            self._fork_from_champion(name, now_ms)
        elif not succeeded:  # another configuration, or a live fork: it learns on, as a new version
            lane.rename(self.rt.successor(name, now_ms))
        if slot.spec is not None:
            slot.refusals += 1
            slot.trial = new_trial(ctx.config, slot.spec)
            slot.trial.wait = ctx.config.gate.retry_after * 2 ** min(slot.refusals - 1, 4)
        out: list[TrainOutput] = [decision_record(decision), *retired]
        if state.canary is not None and state.canary[0] == version:
            out.extend(canary.end(self.rt, f"{version} was refused", now_ms))
        return out

    def _rollback(self, verdict: Verdict, now_ms: int) -> list[TrainOutput]:
        state, ctx, group = self.state, self.ctx, self.state.name
        standby, champion = self.lanes[STANDBY_SLOT], self.lanes[CHAMPION_SLOT]
        failed = champion.version
        reason = f"{failed} fell behind its predecessor {standby.version} on probation: {verdict.reason}"
        decision = ctx.promoter.rollback(
            group, version=standby.version, learner=standby.learner, previous=failed, reason=reason,
            evidence=dict(verdict.evidence), ts_ms=now_ms,
        )  # fmt: skip
        ctx.metrics.decided(group, "rollback")
        champion.replace(standby.version, standby.learner, learns=False)
        state.champion_through = 0  # frozen long before any job still queued
        state.change.reset()
        standby.close()
        del self.lanes[STANDBY_SLOT], state.slots[STANDBY_SLOT]
        self.rt.new_trials()
        return [decision_record(decision), *self._refork(now_ms), *canary.end(self.rt, "the champion changed", now_ms)]

    def _retire_standby(self, verdict: Verdict, now_ms: int) -> list[TrainOutput]:
        champion = self.lanes[CHAMPION_SLOT].version
        reason = f"{champion} passed its probation: {verdict.reason}"
        return self._drop_standby(reason, dict(verdict.evidence), now_ms)

    def _drop_standby(self, reason: str, evidence: dict[str, Any], now_ms: int) -> list[TrainOutput]:
        state, ctx = self.state, self.ctx
        standby = self.lanes.pop(STANDBY_SLOT)
        del state.slots[STANDBY_SLOT]
        standby.close()
        decision = ctx.promoter.retire(
            state.name, version=standby.version, reason=reason, evidence=evidence, ts_ms=now_ms
        )
        return [decision_record(decision)]

    def _fork_from_champion(self, name: str, now_ms: int) -> str:
        """Put a fresh copy of the champion in a fork's lane, as a new version; return its id."""
        champion = self.lanes[CHAMPION_SLOT]
        learner = champion.learner.clone(include_state=True)
        info = self.ctx.registry.create_version(
            self.state.name, name=name, parent=champion.version, learner=learner,
            config={"fork_of": champion.version}, ts_ms=now_ms,
        )  # fmt: skip
        self.lanes[name].replace(info.id, learner, learns=True, through=self.state.champion_through)
        return info.id

    def _refork(self, now_ms: int, *, keep: str | None = None) -> list[TrainOutput]:
        """Every fork but ``keep`` (the one just promoted, which learns on) starts again from the
        new champion, as a new version; the version it leaves is retired."""
        state, ctx, group = self.state, self.ctx, self.state.name
        champion = self.lanes[CHAMPION_SLOT]
        out: list[TrainOutput] = []
        for name, slot in state.slots.items():
            if slot.spec is None or not slot.spec.fork or name == keep:
                continue
            old = self.lanes[name].version
            fork = self._fork_from_champion(name, now_ms)
            if ctx.registry.version(old).status != "candidate":
                # Decided already: on a resume from a snapshot older than a promotion, the fork's
                # version may be the registry's champion now, or retired. It keeps its status.
                continue
            reason = f"forked again from the new champion {champion.version} as {fork}"
            out.append(
                decision_record(ctx.promoter.retire(group, version=old, reason=reason, evidence={}, ts_ms=now_ms))
            )
        return out

    def _golden_set(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The golden set to check a promotion against: the file's, or the trusted history (the
        reservoir as frozen at the last promotion; all of it before the first), or None."""
        state = self.state
        golden: GoldenSet | None = self.ctx.config.golden
        if golden is not None:
            return golden.x, golden.y
        if state.reservoir is None:
            return None
        if state.trusted is not None and len(state.trusted[1]) >= GOLDEN_MIN_SIZE:
            return state.trusted
        return state.reservoir.arrays()

    def _golden_check(self, candidate: Learner, x: np.ndarray, y: np.ndarray) -> Verdict:
        """The candidate against the champion on the golden set."""
        evaluator = GoldenEvaluator(tolerance=self.ctx.config.gate.golden_tolerance, min_size=GOLDEN_MIN_SIZE)
        champion = self.lanes[CHAMPION_SLOT].learner
        evaluator.update(Paired(candidate=_correct(candidate, x, y), champion=_correct(champion, x, y)))
        return evaluator.verdict()

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
        state.outbox.extend(r for r in self._refork(int(ctx.clock() * 1000)) if isinstance(r, DecisionRecord))

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


def _correct(learner: Learner, x: np.ndarray, y: np.ndarray) -> npt.NDArray[np.float64]:
    try:
        predicted = np.asarray(learner.predict_proba(x), dtype=np.float64).argmax(axis=1)
    except Exception:  # a model that cannot predict is wrong everywhere
        return np.zeros(len(y))
    return np.asarray(predicted == y, dtype=np.float64)


def _prefixed(prefix: str, verdict: Verdict) -> dict[str, Any]:
    return {f"{prefix}_{k}": v for k, v in verdict.evidence.items()} | {f"{prefix}_phase": verdict.phase.value}


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
