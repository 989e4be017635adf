"""Candidates an operator adds (`dataflows.train.commands`: ``add_candidate``, ``replay``): the
config fragment checked as the config file's ``model.candidates`` is, and the new slot joined to
the group beside the configured ones."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from dataflows.config import CandidateSpec
from dataflows.jobs import Job, LaneState
from dataflows.train.state import GroupRuntime, Slot, TrainOutput, new_candidate
from dataflows.train.trials import CHAMPION_SLOT, RESTART_SLOT, STANDBY_SLOT, new_trial
from evaluators import PrequentialScore
from learners import LearnerSpec

__all__ = ["Rejected", "candidate_spec", "join", "spec_of"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class Rejected(Exception):
    """The command cannot be applied as the group stands: the message says why; ``out``, what was
    done on the way and must be emitted still (a golden check's verdict and the refusal it caused)."""

    def __init__(self, message: str, out: list[TrainOutput] | None = None) -> None:
        super().__init__(message)
        self.out: list[TrainOutput] = out or []


class _CandidateWire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    learner: str | None = None
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    seed: int = 0
    gate: str = "shadow"


def candidate_spec(fragment: dict[str, Any]) -> CandidateSpec:
    """A candidate as ``model.candidates`` in the config file writes it (the daemon's settings
    check the same), as the flow's `CandidateSpec`; `Rejected` says what is wrong."""
    try:
        wire = msgspec.convert(fragment, _CandidateWire)
    except msgspec.ValidationError as exc:
        msg = f"{exc}"
        raise Rejected(msg) from None
    if not _NAME.match(wire.name) or wire.name in (CHAMPION_SLOT, STANDBY_SLOT, RESTART_SLOT):
        msg = f"{wire.name!r} is not a candidate name (lower case, digits, - and _; not reserved)"
        raise Rejected(msg)
    if wire.learner is None and (wire.params or wire.seed):
        msg = "a fork (learner: null) takes the champion's learner: params and seed do not apply"
        raise Rejected(msg)
    try:
        learner = None if wire.learner is None else LearnerSpec(wire.learner, wire.params, wire.seed)
        return CandidateSpec(wire.name, learner, wire.gate)
    except ValueError as exc:
        msg = f"{exc}"
        raise Rejected(msg) from None


def spec_of(rt: GroupRuntime, fragment: dict[str, Any], kind: str) -> CandidateSpec:
    """The fragment as a candidate that may join the group now (`Rejected` says why not)."""
    try:
        spec = candidate_spec(fragment)
    except Rejected as exc:
        raise Rejected(f"{kind}: {exc}") from None
    state = rt.state
    taken = set(state.slots) | {RESTART_SLOT} | {p.spec.name for p in rt.replays}
    if spec.name in taken:
        msg = f"{kind}: group {state.name!r} has a model named {spec.name!r} already"
        raise Rejected(msg)
    if spec.gate == "canary" and any(s.spec is not None and s.spec.gate == "canary" for s in state.slots.values()):
        msg = f"{kind}: the group has a canary candidate already (at most one)"
        raise Rejected(msg)
    return spec


def join(rt: GroupRuntime, spec: CandidateSpec, now_ms: int, first: Job | None = None, **described: Any) -> str:
    """Register ``spec``'s model as a new version and give it a slot and a lane (``first``: a job
    it runs before the live ones); return the version."""
    state, ctx = rt.state, rt.ctx
    try:
        champion = rt.lanes[CHAMPION_SLOT]
        version, learner = new_candidate(ctx, spec, champion.version, champion.learner, now_ms, **described)
    except Exception as exc:  # a user's factory may raise anything: the command is refused, the step goes on
        msg = f"cannot build {spec.name!r}: {exc}"
        raise Rejected(msg) from None
    lane = LaneState(version, learner, True)
    state.slots[spec.name] = Slot(spec.name, "candidate", lane, PrequentialScore(ctx.config.rolling_window), spec,
                                  new_trial(ctx.config, spec))  # fmt: skip
    rt.lanes[spec.name] = rt.open_lane(spec.name, lane)
    if first is not None:
        rt.lanes[spec.name].submit(first)
    return version
