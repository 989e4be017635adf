"""The ``model`` section of Headwater's settings (`daemon.config.Settings`): the champion's learner,
the candidates beside it — by default the default portfolio — and the vote they may serve as
(`daemon.sections` holds the other sections)."""

from __future__ import annotations

import importlib.util
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from daemon.sections import _Section
from dataflows import CandidateSpec
from dataflows.config import BanditSpec, VoteSpec
from learners import LearnerSpec

__all__ = ["BanditSettings", "CandidateSettings", "ModelSettings", "VoteSettings"]


class CandidateSettings(_Section):
    """A model that learns beside the champion and may replace it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="unique within the group")
    learner: str | None = Field(None, description="null: a fork of the champion (clone with its state)")
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    gate: Literal["shadow", "canary", "refresh"] = Field(
        "shadow",
        description=(
            "shadow: scored, never served, promoted when significantly better; canary: serves a share; "
            "refresh (forks only): replaces the champion as soon as it is not worse"
        ),
    )

    @model_validator(mode="after")
    def _not_reserved(self) -> Self:
        if self.name in ("champion", "standby", "restart"):
            msg = f"candidate name {self.name!r} is reserved"
            raise ValueError(msg)
        if self.learner is None and (self.params or self.seed):
            msg = "a fork (learner: null) takes the champion's learner: params and seed do not apply"
            raise ValueError(msg)
        if self.gate == "refresh" and self.learner is not None:
            msg = "gate: refresh is for forks (learner: null), the champion's own model learning on"
            raise ValueError(msg)
        return self

    def spec(self) -> CandidateSpec:
        learner = None if self.learner is None else LearnerSpec(self.learner, self.params, self.seed)
        return CandidateSpec(self.name, learner, self.gate)


def _default_candidates() -> list[CandidateSettings]:
    """The default portfolio beside the champion (river-logreg, a linear model): its fork, a
    Hoeffding tree, and with PyTorch installed (the torch extra) a small MLP. With ``vote.enabled:
    auto`` they serve as a weighted vote (`ModelSettings.voting`)."""
    members: list[dict[str, Any]] = [{"name": "fork"}, {"name": "tree", "learner": "river-hoeffding"}]
    if importlib.util.find_spec("torch") is not None:
        members.append({"name": "mlp", "learner": "torch-mlp"})
    return [CandidateSettings.model_validate(m) for m in members]


class BanditSettings(_Section):
    """``model.vote.policy: bandit``: each event is served by one member, on a sticky share of the
    keys that follows how likely each member is to be the best (`evaluators.BanditGate`)."""

    allocation: Literal["thompson", "ucb"] = Field("thompson", description="how the shares follow the evidence")
    ceiling: float = Field(0.5, gt=0, le=1, description="the members' shares of the keys together, at most")
    floor: float = Field(0.05, ge=0, lt=1, description="each member's least part of that")
    threshold: float = Field(0.95, gt=0.5, lt=1, description="probability of being the best that promotes a member")
    discount: float = Field(0.999, gt=0, le=1, description="per label, for each member's recent accuracy")
    min_samples: int = Field(300, ge=10, description="labels before a member may be promoted")
    max_samples: int = Field(20_000, ge=100, description="labels without a winner before the gate starts over")

    def spec(self) -> BanditSpec:
        return BanditSpec(self.allocation, self.ceiling, self.floor, self.threshold, self.discount, self.min_samples,
                          self.max_samples)  # fmt: skip


class VoteSettings(_Section):
    """The portfolio's weighted vote: the candidates (forks and other learners, each learning in its
    own lane) serve together on the champion's route, weighted by how often each was right lately;
    the champion serves until they can, and its gates go on (docs/architecture.md). A thread lane
    hands serving copies of its model; a process lane's model answers serving from its process."""

    enabled: bool | Literal["auto"] = Field(
        "auto",
        description=(
            "serve the candidates' weighted vote (thread or process lanes); auto: with the default candidates "
            "(the default portfolio), in one process and without live refresh"
        ),
    )
    eta: float = Field(0.5, gt=0, le=10, description="how fast weight moves to the members that are right")
    share: float = Field(0.002, ge=0, lt=1, description="part of the weight spread evenly after each example")
    fade: float = Field(0.995, gt=0, lt=1, description="per example, for the recent accuracy of each member")
    policy: Literal["vote", "bandit"] = Field(
        "vote", description="vote: the members' weighted vote serves; bandit: one member per event (bandit:)"
    )
    bandit: BanditSettings = Field(default_factory=BanditSettings)  # type: ignore[arg-type]

    def spec(self) -> VoteSpec:
        return VoteSpec(self.eta, self.share, self.fade, self.bandit.spec() if self.policy == "bandit" else None)


class ModelSettings(_Section):
    group: str = Field("default", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    learner: str = Field("river-logreg", description="built-in name or 'package.module:factory'")
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    rolling_window: int = Field(1000, ge=1, description="labelled examples in the rolling prequential accuracy")
    candidates: list[CandidateSettings] = Field(
        default_factory=_default_candidates, description="models that learn beside the champion; [] for none"
    )
    vote: VoteSettings = Field(default_factory=VoteSettings)  # type: ignore[arg-type]

    def voting(self, *, live_refresh: bool = False) -> bool:
        """Whether the candidates serve as a vote: ``vote.enabled``, or with ``auto`` when the
        candidates are the default portfolio's (left out, or written out as they are: a dumped
        configuration loads the same) and live refresh is off (a cluster turns an ``auto`` vote off
        at start: `daemon.runner`)."""
        if self.vote.enabled != "auto":
            return self.vote.enabled
        return self.candidates == _default_candidates() and not live_refresh

    @model_validator(mode="after")
    def _unique_candidates(self) -> Self:
        names = [c.name for c in self.candidates]
        if len(set(names)) != len(names):
            msg = f"candidate names must be unique: {names}"
            raise ValueError(msg)
        if self.vote.enabled is True and not self.candidates:
            msg = "vote.enabled needs one or more candidates: they are the vote's members"
            raise ValueError(msg)
        if self.voting() and self.vote.policy == "bandit" and self.vote.bandit.floor * len(self.candidates) > 1:
            msg = f"vote.bandit.floor {self.vote.bandit.floor} for each of {len(self.candidates)} candidates is over 1"
            raise ValueError(msg)
        canaries = [c.name for c in self.candidates if c.gate == "canary"]
        if len(canaries) > 1:
            msg = f"at most one candidate per group can have gate: canary (the others: shadow), got {canaries}"
            raise ValueError(msg)
        return self
