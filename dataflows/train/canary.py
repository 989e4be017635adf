"""The canary: a candidate on a canary trial serves its trial's share of keys with a snapshot of
its model, re-taken at each step of the trial, and taken off the board when the trial moves on.
An operator's ceiling caps the share (0: no canary route); frozen decisions hold it as it is.
"""

from __future__ import annotations

from dataflows.train.state import GroupRuntime, TrainOutput, decision_record
from dataflows.train.trials import canary_share

__all__ = ["end", "publish"]


def publish(rt: GroupRuntime, now_ms: int, *, hold: bool = True) -> list[TrainOutput]:
    """Serve the canary trial's share of keys with a snapshot of its candidate, re-taken at
    each step. The snapshot is a version of its own (parent: the candidate, checkpoint saved),
    so that every prediction names the very model that made it. With decisions frozen the share
    is held (unless ``hold`` is False: an operator's new ceiling applies at once)."""
    state, ctx = rt.state, rt.ctx
    if state.decisions_frozen and hold:
        return []
    holder = next((s for s in state.slots.values() if s.trial is not None and s.trial.kind == "canary"), None)
    wanted: tuple[str, float] | None = None
    if holder is not None and holder.trial is not None:
        share = canary_share(holder.trial)
        if state.canary_ceiling is not None:  # an operator's ceiling (`dataflows.train.commands`)
            share = min(share, state.canary_ceiling)
        if share > 0:
            wanted = (rt.lanes[holder.name].version, share)
    if wanted == (state.canary[:2] if state.canary else None):
        return []
    out = end(rt, "its trial moved on", now_ms, clear=wanted is None)
    if wanted is not None and holder is not None:
        candidate, share = wanted
        frozen = rt.lanes[holder.name].frozen()
        snapshot = ctx.registry.create_version(
            state.name, name=holder.name, parent=candidate, learner=frozen,
            config={"canary_snapshot_of": candidate, "share": share}, ts_ms=now_ms,
        )  # fmt: skip
        ctx.promoter.set_canary(state.name, version=snapshot.id, learner=frozen, share=share)
        state.canary = (candidate, share, snapshot.id)
    return out


def end(rt: GroupRuntime, why: str, now_ms: int, *, clear: bool = True) -> list[TrainOutput]:
    """Take the canary's snapshot off the board (unless a new one replaces it) and retire it."""
    state, ctx = rt.state, rt.ctx
    if state.canary is None:
        return []
    _, _, snapshot = state.canary
    state.canary = None
    if clear:
        ctx.promoter.set_canary(state.name, version=None, learner=None, share=0.0)
    reason = f"canary snapshot {snapshot} no longer serves: {why}"
    return [decision_record(ctx.promoter.retire(state.name, version=snapshot, reason=reason, evidence={},
                                                  ts_ms=now_ms))]  # fmt: skip
