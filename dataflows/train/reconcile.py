"""A resume, brought in line with the registry: the snapshot may be older than what the registry
has decided since (the registry is written first, at each decision).

`at_start` runs as the train step starts, in order: decisions made after the snapshot are emitted
again; the champion is the registry's (a later promotion: trials start over, forks start again
from it); so is the standby; a candidate decided after the snapshot learns on as a new version (a
restart model's turn is over); candidate versions no lane holds are retired.
"""

from __future__ import annotations

import logging

from dataflows.jobs import LaneState
from dataflows.records import DecisionRecord
from dataflows.train import lifecycle, restart
from dataflows.train.state import GroupRuntime, Slot, decision_record
from dataflows.train.trials import CHAMPION_SLOT, RESTART_SLOT, STANDBY_SLOT, new_trial, probation
from evaluators import PrequentialScore

__all__ = ["at_start"]

log = logging.getLogger("headwater")


def at_start(rt: GroupRuntime) -> None:
    """Bring a new or resumed group in line with the registry and the board, before its first batch."""
    rt.state.canary = None  # a board starts without a canary: the trial's snapshot is published anew
    _replay_decisions(rt)
    _reconcile_champion(rt)
    _reconcile_standby(rt)
    _reconcile_candidates(rt)
    _retire_orphans(rt)


def _replay_decisions(rt: GroupRuntime) -> None:
    """Decisions the registry recorded after the snapshot this state was resumed from: the
    crash may have come before they reached the model-events topic (a promotion is written to
    the registry first), so they are emitted again, after those it had not emitted yet. At
    least once, as all output."""
    state = rt.state
    if state.decided is None:
        return
    missed = rt.ctx.registry.decisions(state.name, skip=state.decided)
    if missed:
        log.info("group %s: %d decision(s) made after the snapshot are emitted again", state.name, len(missed))
    state.outbox.extend(decision_record(d) for d in missed)
    state.decided = None


def _reconcile_champion(rt: GroupRuntime) -> None:
    """After a restart the registry, not the snapshot, says who serves: a promotion may have
    happened after the last snapshot. Then the trials start over."""
    ctx, state = rt.ctx, rt.state
    serving = ctx.promoter.serving(state.name)
    if serving is None:
        return
    version, learner = serving
    champion = rt.lanes[CHAMPION_SLOT]
    if champion.version == version:
        return
    log.warning("group %s: the snapshot's champion is %s, the registry's %s: serving %s",
                state.name, champion.version, version, version)  # fmt: skip
    champion.replace(version, learner, learns=False)
    state.change.reset()
    state.trusted, state.champion_through = None, 0
    rt.new_trials()
    # As after a promotion: the forks start again from the champion that serves.
    state.outbox.extend(r for r in lifecycle.refork(rt, int(ctx.clock() * 1000)) if isinstance(r, DecisionRecord))


def _reconcile_standby(rt: GroupRuntime) -> None:
    """The standby is the registry's (the last good version, kept for a rollback): a
    promotion or a retirement after the snapshot changed it. Its probation starts over."""
    ctx, state = rt.ctx, rt.state
    standbys = [v.id for v in ctx.registry.versions(state.name) if v.status == "standby"]
    wanted = standbys[-1] if standbys else None
    held = rt.lanes[STANDBY_SLOT].version if STANDBY_SLOT in rt.lanes else None
    if held == wanted:
        return
    if held is not None:
        rt.close_slot(STANDBY_SLOT)
    if wanted is not None:
        lane = LaneState(wanted, ctx.registry.load_checkpoint(wanted), False)
        state.slots[STANDBY_SLOT] = Slot(
            STANDBY_SLOT, "standby", lane, PrequentialScore(ctx.config.rolling_window), trial=probation(ctx.config)
        )
        rt.lanes[STANDBY_SLOT] = rt.open_lane(STANDBY_SLOT, lane)


def _reconcile_candidates(rt: GroupRuntime) -> None:
    """A candidate promoted or refused after the snapshot learns on as a new version: the
    decided version's lineage ended with the decision."""
    ctx, state = rt.ctx, rt.state
    now_ms = int(ctx.clock() * 1000)
    restarted = rt.lanes.get(RESTART_SLOT)
    if restarted is not None and ctx.registry.version(restarted.version).status != "candidate":
        # Promoted (the forks go on from it) or refused after the snapshot: its turn is over.
        restart.drop(rt, "decided after the snapshot", now_ms, retire=False)
    for name, slot in state.slots.items():
        lane = rt.lanes[name]
        if slot.spec is None or ctx.registry.version(lane.version).status == "candidate":
            continue
        lane.rename(rt.successor(name, now_ms))
        if slot.spec is not None:
            slot.trial = new_trial(ctx.config, slot.spec)


def _retire_orphans(rt: GroupRuntime) -> None:
    """Candidate versions no lane holds (made after the snapshot the flow resumed from, or by
    a run whose state is gone) will never learn again: they are retired."""
    ctx, state = rt.ctx, rt.state
    held = {lane.version for lane in rt.lanes.values()}
    now_ms = int(ctx.clock() * 1000)
    for info in ctx.registry.versions(state.name):
        if info.status == "candidate" and info.id not in held:
            reason = "no model learns as this version since the restart (it was made after the snapshot resumed)"
            decision = ctx.promoter.retire(state.name, version=info.id, reason=reason, evidence={}, ts_ms=now_ms)
            state.outbox.append(decision_record(decision))
