"""The restart model (`promotion.restart_on_drift`): an untrained model of the champion's
configuration, started in a slot of its own when the champion's accuracy drops
(`dataflows.train.evidence.watch`), dropped when it has had its chance. Its trial is a shadow test
read early (`trials.new_trial`); it always learns in a thread (`GroupRuntime.open_lane`).
"""

from __future__ import annotations

import logging

from dataflows.config import CandidateSpec
from dataflows.jobs import LaneState
from dataflows.train.state import GroupRuntime, Slot, TrainOutput, decision_record
from dataflows.train.trials import CHAMPION_SLOT, RESTART_SLOT, new_trial
from evaluators import PrequentialScore

__all__ = ["drop", "expire", "start"]

log = logging.getLogger("headwater")


def start(rt: GroupRuntime, now_ms: int) -> list[TrainOutput]:
    """`promotion.restart_on_drift`: after a drop in the champion's accuracy, an untrained model
    of the champion's configuration learns from the change on, beside the candidates. A model
    that learned the old concept may take thousands of examples to unlearn it (an adaptive tree
    can stay stuck below what it learned from scratch, `bench/results/parity-live.md`); one that
    never saw it starts clean. It replaces the champion once significantly better (golden set and
    probation as for every promotion; the forks then go on from it), and is dropped when it is
    refused, or has learned ``max_samples`` examples without winning. A newer drop starts
    another in its place."""
    ctx, state = rt.ctx, rt.state
    out = drop(rt, "a newer change in the data started another", now_ms)
    champion = rt.lanes[CHAMPION_SLOT]
    learner = champion.learner.clone(include_state=False)
    spec = CandidateSpec(RESTART_SLOT, learner=ctx.config.learner, gate="shadow")
    info = ctx.registry.create_version(
        state.name, name=RESTART_SLOT, parent=None, learner=learner,
        config={"restart_after": champion.version, "gate": "restart"}, ts_ms=now_ms,
    )  # fmt: skip
    lane_state = LaneState(info.id, learner, True)
    state.slots[RESTART_SLOT] = Slot(
        RESTART_SLOT, "candidate", lane_state, PrequentialScore(ctx.config.rolling_window), spec,
        new_trial(ctx.config, spec),
    )  # fmt: skip
    rt.lanes[RESTART_SLOT] = rt.open_lane(RESTART_SLOT, lane_state)
    log.warning("group %s: %s starts untrained, learning from the change on", state.name, info.id)
    return out


def drop(rt: GroupRuntime, reason: str, now_ms: int, *, retire: bool = True) -> list[TrainOutput]:
    """Take the restart model out (its version retired with ``reason``), if there is one."""
    state = rt.state
    if RESTART_SLOT not in state.slots:
        return []
    lane = rt.close_slot(RESTART_SLOT)
    if not retire:
        return []
    decision = rt.ctx.promoter.retire(state.name, version=lane.version, reason=reason, evidence={}, ts_ms=now_ms)
    return [decision_record(decision)]


def expire(rt: GroupRuntime, now_ms: int) -> list[TrainOutput]:
    """Drop the restart model once it was scored on ``max_samples`` examples without winning (its
    slot's score counts what it was scored on since it started)."""
    slot, max_samples = rt.state.slots.get(RESTART_SLOT), rt.ctx.config.gate.max_samples
    if slot is not None and slot.score.snapshot().n >= max_samples:
        why = f"not significantly better than the champion within {max_samples} examples"
        return drop(rt, why, now_ms)
    return []
