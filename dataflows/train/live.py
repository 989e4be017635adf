"""Live refresh, as the train step drives it (`promotion.live_refresh`): the refresh fork's lane
serves what it learns between promotions, while its trial allows it.

`sync` arms the fork's lane (`Lane.set_live`) or disarms it and takes its state off the board, after
every collect; `await_live` holds the next micro-batch back (by ``live_refresh_wait_ms`` at most)
until the armed lane has learned the last one and handed it over. How a lane hands its model over
is the lane's (`dataflows.lanes.live` for threads, `dataflows.lanes.ask` for processes).
"""

from __future__ import annotations

from dataflows.jobs import Job
from dataflows.lanes import LiveRefresh
from dataflows.train.state import GroupRuntime
from dataflows.train.trials import CHAMPION_SLOT
from evaluators import RefreshEvaluator

__all__ = ["await_live", "sync"]


def sync(rt: GroupRuntime) -> None:
    """Live refresh: the first refresh fork's lane serves what it learns while its trial shows
    it not worse than the champion (`RefreshEvaluator.may_serve`); after a refusal, once its new
    trial has shown it so (also while it waits to be judged, `trials.is_live_fork`). Otherwise
    the champion itself serves. A process lane serves by answering serving's questions in its
    process (`dataflows.lanes.ask.LiveModel`), published as it is set live, and taken off the
    board if that process dies."""
    gate = rt.ctx.config.gate
    if not gate.live_refresh:
        return
    group, champion = rt.state.name, rt.lanes[CHAMPION_SLOT].version
    forks = [n for n, s in rt.state.slots.items() if s.spec is not None and s.spec.gate == "refresh"]
    lane = rt.lanes[forks[0]] if forks else None
    if lane is None or not lane.serves:
        return
    slot, live = rt.state.slots[lane.name], lane.live
    trial = slot.trial
    if live is not None and live.error is not None:
        rt.uncopyable.add(live.fork)
    may = (
        trial is not None and lane.version not in rt.uncopyable
        and not lane.dead  # a dead process answers nothing
        and isinstance(trial.evaluator, RefreshEvaluator) and trial.evaluator.may_serve(proven=slot.refusals > 0)
    )  # fmt: skip
    current = live is not None and live.champion == champion and live.fork == lane.version
    if live is not None and not (may and current):
        # Off, or for another fork or champion (a refused fork's state must not serve until the
        # new fork's first handover): nothing of it serves from now on.
        lane.set_live(None)
        rt.ctx.promoter.serve_fresh(group, champion=champion, version=None, learner=None)
    if may and not current:
        lane.set_live(LiveRefresh(rt.ctx.promoter, group, champion, lane.version, gate.live_refresh_budget))


def await_live(rt: GroupRuntime, job: Job | None) -> None:
    """With live refresh, wait (at most ``live_refresh_wait_ms``) for the live fork's lane to
    learn ``job`` and hand its state to serving: the next micro-batch is then served by a model
    that learned every label that came before it, as the learner alone would be. Without the
    wait, serving runs a batch or two behind the labels (a micro-batch of staleness costs a
    learner on an incrementally drifting stream about 0.3 point: `bench/results/parity-live.md`).
    A slow lane holds serving back by the bound at most, and is then handed over to as before."""
    wait_s = rt.ctx.config.gate.live_refresh_wait_ms / 1000
    if job is None or not len(job) or wait_s <= 0:
        return
    for lane in rt.lanes.values():
        # Also while its copies rest (the rest often ends while it learns this job) and when it
        # is behind (serving then slows, by the bound at most, and lets it catch up): skipping
        # either took the parity bench from 10 of 12 pairs to 8 and 9 (torch-mlp on RBF).
        # A process lane does not wait (`ProcessLane.await_live`).
        lane.await_live(wait_s)
