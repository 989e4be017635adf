"""The lifecycle's actions, decided and carried out: promote, refuse, roll back, retire the standby,
fork again.

`next_actions` decides, purely, what the trials' verdicts ask for; `carry_out` does it, one action
at a time, through the promoter (the one component that changes what serves) and the registry.
A promotion freezes the candidate's state as the new champion (after the golden set,
`dataflows.train.golden`), puts the replaced champion on standby for its probation, starts every
trial over and forks the forks again from the new champion; the candidate learns on as a new
version. A refused candidate starts again from the champion (a fork) or learns on as a new version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dataflows.jobs import LaneState
from dataflows.train import canary, restart
from dataflows.train.evidence import verdict_record
from dataflows.train.golden import GOLDEN_MIN_SIZE, check_golden, golden_set_of, prefixed
from dataflows.train.state import GroupRuntime, Slot, TrainOutput, decision_record
from dataflows.train.trials import CHAMPION_SLOT, RESTART_SLOT, STANDBY_SLOT, Trial, is_live_fork, new_trial, probation
from evaluators import Phase, PrequentialScore, Verdict
from learners import Learner

__all__ = [
    "Action",
    "act",
    "carry_out",
    "crown",
    "drop_standby",
    "fork_from_champion",
    "next_actions",
    "promote",
    "refork",
    "refuse",
    "retire_standby",
    "rollback",
]


@dataclass(frozen=True)
class Action:
    """What the gate asks for: ``promote``, ``refuse``, ``new_trial``, ``rollback``, ``retire_standby``."""

    kind: str
    slot: str
    verdict: Verdict


def next_actions(trials: dict[str, Trial]) -> list[Action]:
    """From the trials' verdicts to actions: at most one promotion or rollback at a time.

    A failing champion on probation is rolled back before anything else; a failed candidate is
    refused; an inconclusive trial starts over; and then a candidate that passed is promoted (the
    first in slot order, if several passed at once).
    """
    actions: list[Action] = []
    standby = trials.get(STANDBY_SLOT)
    if standby is not None and standby.verdict is not None:
        if standby.verdict.phase is Phase.FAILED:
            return [Action("rollback", STANDBY_SLOT, standby.verdict)]
        if standby.verdict.phase is Phase.PASSED:
            actions.append(Action("retire_standby", STANDBY_SLOT, standby.verdict))
    promotion: Action | None = None
    for slot, trial in trials.items():
        if slot == STANDBY_SLOT or trial.verdict is None:
            continue
        phase = trial.verdict.phase
        if phase is Phase.PASSED and promotion is None:
            promotion = Action("promote", slot, trial.verdict)
        elif phase in (Phase.FAILED, Phase.ERROR):
            actions.append(Action("refuse", slot, trial.verdict))
        elif phase is Phase.INCONCLUSIVE:
            actions.append(Action("new_trial", slot, trial.verdict))
    # The promotion last: it starts every other trial over, and a candidate that failed its own
    # trial is refused whatever else happens at the same moment.
    return actions + ([promotion] if promotion is not None else [])


def carry_out(rt: GroupRuntime, now_ms: int) -> list[TrainOutput]:
    """Carry out what the trials' verdicts ask for (`next_actions`), in its order, until
    the champion changes: every other trial then starts over against the new one. Nothing while
    an operator froze the group's decisions (its verdicts are still reported)."""
    out: list[TrainOutput] = []
    if rt.state.decisions_frozen:
        return out
    for action in next_actions({n: s.trial for n, s in rt.state.slots.items() if s.trial is not None}):
        serving = rt.lanes[CHAMPION_SLOT].version
        out.extend(act(rt, action, now_ms))
        if rt.lanes[CHAMPION_SLOT].version != serving:
            break  # every other trial starts over against the new champion
    return out


def act(rt: GroupRuntime, action: Action, now_ms: int) -> list[TrainOutput]:
    """Carry out one action, the lineage written first."""
    rt.flush_lineage()  # a decision is recorded with the lineage it was taken on
    if action.kind == "promote":
        return promote(rt, action.slot, action.verdict, now_ms)
    if action.kind == "refuse":
        return refuse(rt, action.slot, action.verdict.reason, dict(action.verdict.evidence), now_ms)
    if action.kind == "rollback":
        return rollback(rt, action.verdict, now_ms)
    if action.kind == "retire_standby":
        return retire_standby(rt, action.verdict, now_ms)
    if action.slot == RESTART_SLOT:  # new_trial: it had its chance
        return restart.drop(rt, f"not better than the champion: {action.verdict.reason}", now_ms)
    trial = rt.state.slots[action.slot].trial
    if trial is not None:  # new_trial: the evidence so far is spent
        trial.evaluator.reset()
        trial.phase, trial.verdict = Phase.PENDING, None
    return []


def promote(
    rt: GroupRuntime, name: str, verdict: Verdict, now_ms: int, *, golden: bool = True, by: str = "trial"
) -> list[TrainOutput]:
    """Make slot ``name``'s model the champion, if it does not regress on the golden set (else it
    is refused; ``golden`` False: not checked); it learns on as a new version. ``by`` says who
    asked: its trial, or an operator's command (`dataflows.train.commands`)."""
    state = rt.state
    slot, lane = state.slots[name], rt.lanes[name]
    kind = slot.trial.kind if slot.trial else "live"
    golden_set = golden_set_of(rt) if golden else None
    if golden_set is not None and len(golden_set[1]) < GOLDEN_MIN_SIZE:
        return []  # not enough trusted history to check against yet: the trial waits
    version = lane.version
    # The candidate's state is frozen and, at the same instant, what the lane learns from now on
    # belongs to its successor: the promoted version's lineage ends with its checkpoint.
    frozen = lane.freeze_as(rt.successor(name, now_ms))
    through = lane.frozen_through
    out: list[TrainOutput] = []
    checked = None if golden_set is None else check_golden(rt, frozen, *golden_set)
    if checked is not None:
        out.append(verdict_record(rt, slot, "golden", checked, now_ms, version=version))
        if checked.phase is not Phase.PASSED:
            passed = f"passed its {kind} trial" if by == "trial" else f"was promoted by {by}"
            reason = f"{name} {version} {passed} but not the golden set: {checked.reason}"
            evidence = dict(verdict.evidence) | prefixed("golden", checked)
            return out + refuse(rt, name, reason, evidence, now_ms, version=version)
    previous = rt.lanes[CHAMPION_SLOT].version
    evidence = dict(verdict.evidence) | ({} if checked is None else prefixed("golden", checked))
    why = f"passed its {kind} trial against {previous}" if by == "trial" else f"promoted by {by} over {previous}"
    out.extend(crown(rt, version, frozen, reason=f"{name} {version} {why}: {verdict.reason}", evidence=evidence,
                     now_ms=now_ms, through=through, refresh=kind == "refresh", keep=name))  # fmt: skip
    slot.refusals = 0
    if name == RESTART_SLOT:  # the forks go on from its state: a second learner of it would be waste
        out.extend(restart.drop(rt, f"its state {version} is the champion now; the forks go on from it", now_ms))
    return out


def crown(
    rt: GroupRuntime, version: str, frozen: Learner, *, reason: str, evidence: dict[str, Any], now_ms: int,
    through: int = 0, refresh: bool = False, keep: str | None = None,
) -> list[TrainOutput]:  # fmt: skip
    """``version`` (its model ``frozen``) serves as the champion: the replaced champion goes on
    standby for its probation (or is retired: an untrained one, or one replaced before its own
    probation ended), every trial starts over, and every fork but ``keep`` starts again from it."""
    state, ctx, group = rt.state, rt.ctx, rt.state.name
    champion = rt.lanes[CHAMPION_SLOT]
    previous, previous_learner = champion.version, champion.learner
    decision = ctx.promoter.promote(
        group, version=version, learner=frozen, previous=previous, reason=reason, evidence=evidence, ts_ms=now_ms
    )
    out: list[TrainOutput] = [decision_record(decision)]
    ctx.metrics.decided(group, "promote")
    champion.replace(version, frozen, learns=False, through=through)
    state.champion_through = through
    state.change.reset()  # a new champion: its errors are a new stream
    if STANDBY_SLOT in state.slots:
        # The champion just replaced never finished its probation: the standby stays the last
        # good version, and the new champion's probation is against it.
        standby = rt.lanes[STANDBY_SLOT].version
        why = f"replaced by {version} before its probation against {standby} ended"
        retired = ctx.promoter.retire(group, version=previous, reason=why, evidence={}, ts_ms=now_ms)
        out.append(decision_record(retired))
        state.slots[STANDBY_SLOT].trial = probation(ctx.config, refresh=refresh)
    elif ctx.registry.version(previous).config.get("untrained"):
        # An untrained first champion was never good: there is nothing to roll back to.
        why = f"replaced by {version}; never trained, so not kept for a rollback"
        retired = ctx.promoter.retire(group, version=previous, reason=why, evidence={}, ts_ms=now_ms)
        out.append(decision_record(retired))
    else:
        window = ctx.config.rolling_window
        standby_lane = LaneState(previous, previous_learner, False)
        state.slots[STANDBY_SLOT] = Slot(
            STANDBY_SLOT, "standby", standby_lane, PrequentialScore(window),
            trial=probation(ctx.config, refresh=refresh),
        )  # fmt: skip
        rt.lanes[STANDBY_SLOT] = rt.open_lane(STANDBY_SLOT, standby_lane)
    rt.new_trials()
    out.extend(refork(rt, now_ms, keep=keep))
    if state.reservoir is not None:
        state.trusted = state.reservoir.arrays()
    out.extend(canary.end(rt, "the champion changed", now_ms))
    return out


def refuse(
    rt: GroupRuntime, name: str, reason: str, evidence: dict[str, Any], now_ms: int, *, version: str | None = None
) -> list[TrainOutput]:
    """Refuse the slot's version (or ``version``, already succeeded in its lane)."""
    state, ctx, group = rt.state, rt.ctx, rt.state.name
    slot, lane = state.slots[name], rt.lanes[name]
    succeeded = version is not None
    version = lane.version if version is None else version
    decision = ctx.promoter.refuse(group, version=version, reason=reason, evidence=evidence, ts_ms=now_ms)
    ctx.metrics.decided(group, "refuse")
    if name == RESTART_SLOT:  # no second chance: it is dropped (a newer change starts another)
        # The successor made as it was frozen never learned anything of its own: retired.
        dropped = restart.drop(rt, f"{version} was refused", now_ms, retire=succeeded)
        return [decision_record(decision), *dropped]
    # A fork starts again from the champion, but a live fork refused on live evidence: it learns on
    # (`trials.is_live_fork`). One that failed the golden set may have learned poisoned labels: it restarts.
    learns_on = not succeeded and is_live_fork(rt.ctx.config.gate, slot.spec)
    retired: list[TrainOutput] = []
    if slot.spec is not None and slot.spec.fork and not learns_on:
        if succeeded:  # the successor it was handed to never learned anything of its own
            orphan = lane.version
            why = f"{version} was refused"
            retired.append(
                decision_record(ctx.promoter.retire(group, version=orphan, reason=why, evidence={}, ts_ms=now_ms))
            )
        fork_from_champion(rt, name, now_ms)
    elif not succeeded:  # another configuration, or a live fork: it learns on, as a new version
        lane.rename(rt.successor(name, now_ms))
    if slot.spec is not None:
        slot.refusals += 1
        slot.trial = new_trial(ctx.config, slot.spec)
        slot.trial.wait = ctx.config.gate.retry_after * 2 ** min(slot.refusals - 1, 4)
    out: list[TrainOutput] = [decision_record(decision), *retired]
    if state.canary is not None and state.canary[0] == version:
        out.extend(canary.end(rt, f"{version} was refused", now_ms))
    return out


def rollback(rt: GroupRuntime, verdict: Verdict, now_ms: int, *, reason: str | None = None) -> list[TrainOutput]:
    """The champion failed its probation (or an operator said so, ``reason``): the standby serves
    again, and the forks start from it."""
    state, ctx, group = rt.state, rt.ctx, rt.state.name
    standby, champion = rt.lanes[STANDBY_SLOT], rt.lanes[CHAMPION_SLOT]
    failed = champion.version
    if reason is None:
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
    del rt.lanes[STANDBY_SLOT], state.slots[STANDBY_SLOT]
    rt.new_trials()
    return [decision_record(decision), *refork(rt, now_ms), *canary.end(rt, "the champion changed", now_ms)]


def retire_standby(rt: GroupRuntime, verdict: Verdict, now_ms: int) -> list[TrainOutput]:
    """The champion passed its probation: the standby is no longer needed for a rollback."""
    champion = rt.lanes[CHAMPION_SLOT].version
    reason = f"{champion} passed its probation: {verdict.reason}"
    return drop_standby(rt, reason, dict(verdict.evidence), now_ms)


def drop_standby(rt: GroupRuntime, reason: str, evidence: dict[str, Any], now_ms: int) -> list[TrainOutput]:
    state, ctx = rt.state, rt.ctx
    standby = rt.close_slot(STANDBY_SLOT)
    decision = ctx.promoter.retire(state.name, version=standby.version, reason=reason, evidence=evidence, ts_ms=now_ms)
    return [decision_record(decision)]


def fork_from_champion(rt: GroupRuntime, name: str, now_ms: int) -> str:
    """Put a fresh copy of the champion in a fork's lane, as a new version; return its id."""
    champion = rt.lanes[CHAMPION_SLOT]
    learner = champion.learner.clone(include_state=True)
    info = rt.ctx.registry.create_version(
        rt.state.name, name=name, parent=champion.version, learner=learner,
        config={"fork_of": champion.version}, ts_ms=now_ms,
    )  # fmt: skip
    rt.lanes[name].replace(info.id, learner, learns=True, through=rt.state.champion_through)
    return info.id


def refork(rt: GroupRuntime, now_ms: int, *, keep: str | None = None) -> list[TrainOutput]:
    """Every fork but ``keep`` (the one just promoted, which learns on) starts again from the
    new champion, as a new version; the version it leaves is retired."""
    state, ctx, group = rt.state, rt.ctx, rt.state.name
    champion = rt.lanes[CHAMPION_SLOT]
    out: list[TrainOutput] = []
    for name, slot in state.slots.items():
        if slot.spec is None or not slot.spec.fork or name == keep:
            continue
        old = rt.lanes[name].version
        fork = fork_from_champion(rt, name, now_ms)
        if ctx.registry.version(old).status != "candidate":
            # Decided already: on a resume from a snapshot older than a promotion, the fork's
            # version may be the registry's champion now, or retired. It keeps its status.
            continue
        reason = f"forked again from the new champion {champion.version} as {fork}"
        out.append(decision_record(ctx.promoter.retire(group, version=old, reason=reason, evidence={}, ts_ms=now_ms)))
    return out
