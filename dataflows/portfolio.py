"""The portfolio's vote as serving sees it (`model.vote`): the latest state of every member and the
weights the train step gives them (`evaluators.WeightedVote`).

Members are the group's candidates, each learning in its own lane; after the batches it learns, a
member's thread lane hands serving its latest state (as a live refresh fork does,
`dataflows.lanes.live`); a process lane's model answers from its process instead
(`dataflows.lanes.ask.LiveModel`: the state is always the latest). After each collect the train
step hands over the weights and the guard's choice. A `Portfolio`
is immutable: each hand-over makes a new one (`with_member`, `with_weights`), so a serve call reads
one consistent set of members and weights.

On the champion's route the portfolio serves first: the weighted average of its members'
probabilities (a member that cannot answer, or whose state is `STALE_JOBS` labelled jobs behind
while others are fresher, is left out, the others renormalised), or the one
member the guard chose when it has done better lately than the vote. Until a member with weight
has a state, or if none can answer, the champion serves as before.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from evaluators.bandit import BanditGate
from evaluators.canary import canary_bucket
from evaluators.vote import VOTE
from learners import Learner
from learners.base import FloatArray

__all__ = ["BANDIT_ROUTE", "STALE_JOBS", "VOTE_ROUTE", "Member", "Portfolio"]

VOTE_ROUTE = "vote"  # the route a prediction of the portfolio names
BANDIT_ROUTE = "bandit"  # ... and one of a member alone, served by the bandit (`model.vote.policy: bandit`)


# Serving asks the members that answer from their processes at once, each on a thread of this pool
# (the asking thread waits on a pipe: no GIL is held meanwhile).
_ASKING = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="headwater-vote-ask")

STALE_JOBS = 8  # a member whose state is this many labelled jobs behind the newest sits out while others are fresher


@dataclass(frozen=True)
class Member:
    """A member's latest state: its registry version, its model (predict only), and the last
    labelled job it had learned (-1: unknown)."""

    version: str
    learner: Learner
    through: int = -1


@dataclass(frozen=True)
class Portfolio:
    """Members (by slot name), their weights, and what the guard serves (``VOTE`` or a member)."""

    members: Mapping[str, Member] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)
    choice: str = VOTE
    seq: int = -1  # the newest labelled job handed to the members, when the weights were set
    # ``model.vote.policy: bandit``: each member's share of the keys (`evaluators.BanditGate`); the
    # champion serves the rest. None: the weighted vote serves.
    shares: Mapping[str, float] | None = None
    seed: int = 0  # of the sticky buckets the shares cut

    def with_member(self, name: str, member: Member | None) -> Portfolio:
        """This portfolio with ``name``'s latest state (None: without it)."""
        members = {k: v for k, v in self.members.items() if k != name}
        if member is not None:
            members[name] = member
        return replace(self, members=members)

    def with_weights(
        self, weights: Mapping[str, float], choice: str, seq: int = -1, shares: Mapping[str, float] | None = None
    ) -> Portfolio:
        """This portfolio with new weights and guard (as of labelled job ``seq``), and with a bandit
        the members' shares of the keys; members no longer weighted leave it."""
        members = {k: v for k, v in self.members.items() if k in weights}
        shares = None if shares is None else {k: v for k, v in shares.items() if k in weights}
        return replace(self, members=members, weights=dict(weights), choice=choice, seq=seq, shares=shares)

    def arms(self, ids: list[str]) -> dict[str, np.ndarray]:
        """With a bandit: the rows of ``ids`` each member serves (by its share of the sticky buckets,
        `evaluators.BanditGate.route`); the rest are the champion's. Members with no state yet serve
        none (their rows go to the champion)."""
        if not self.shares:
            return {}
        buckets = np.fromiter((canary_bucket(key, self.seed) for key in ids), dtype=np.float64, count=len(ids))
        arms = np.asarray(BanditGate.route(buckets, self.shares))
        return {n: rows for n in self.members if len(rows := np.flatnonzero(arms == n))}

    @cached_property
    def chosen(self) -> Member | None:
        """The member the guard chose, if it has a state that is not `STALE_JOBS` behind while
        another weighted member's is fresher: the guard picks by the answers of its lane, and a
        member that cannot keep up would serve a state far older than the one that earned them
        (torch-mlp on a 2-CPU machine, after a switch of concept: its lane learned the new one,
        its served state still held the old one for a few thousand events)."""
        member = self.members.get(self.choice) if self.choice != VOTE else None
        if member is None or member.through < 0 or member.through >= self.seq - STALE_JOBS:
            return member
        fresher = any(m.through < 0 or m.through > member.through for n, m in self.members.items()
                      if n != self.choice and self.weights.get(n, 0.0) > 0)  # fmt: skip
        return None if fresher else member

    @cached_property
    def voters(self) -> dict[str, Member]:
        """The weighted members that vote now: those whose state is no more than `STALE_JOBS`
        behind (a member that cannot keep up with the labels would serve an old state under a
        weight earned by its lane's current one), or all of them when none is that fresh."""
        weighted = {n: m for n, m in self.members.items() if self.weights.get(n, 0.0) > 0}
        fresh = {n: m for n, m in weighted.items() if m.through < 0 or m.through >= self.seq - STALE_JOBS}
        return fresh or weighted

    @property
    def ready(self) -> bool:
        """Whether it can serve: the chosen member has a state, or a weighted one does (the vote
        stands in for a chosen member that has none yet); with a bandit, a member with a share."""
        if self.shares is not None:
            return any(n in self.members and share > 0 for n, share in self.shares.items())
        return self.chosen is not None or bool(self.voters)

    def served_by(self) -> tuple[str, dict[str, float]]:
        """The version a prediction names (the chosen member's, or the heaviest member's) and the
        versions and weights behind it (the chosen member alone: its weight 1)."""
        if self.chosen is not None:
            version = self.chosen.version
            return version, {version: 1.0}
        return self._behind(self.voters)

    def _behind(self, voters: Mapping[str, Member]) -> tuple[str, dict[str, float]]:
        total = sum(self.weights[n] for n in voters)
        weighted = {m.version: round(self.weights[n] / total, 4) for n, m in voters.items()}
        heaviest = max(weighted, key=weighted.__getitem__)
        return heaviest, weighted

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """The vote's (or the chosen member's) class probabilities for ``x`` (see `answer`)."""
        return self.answer(x)[0]

    def answer(self, x: FloatArray) -> tuple[FloatArray, tuple[str, dict[str, float]]]:
        """The vote's (or the chosen member's) class probabilities for ``x``, and the version and
        weights behind them (`served_by`, of the members that answered); raises if no member with
        weight can answer (`Unavailable` when none could answer in time, and none failed).

        Members that answer from a process of their own (`dataflows.lanes.ask.LiveModel`) are asked
        all at once: serving waits for the slowest, not for the sum."""
        from dataflows.serve import Unavailable  # serving imports this module

        chosen, errors, late = self.chosen, [], 0
        voters = dict(self.voters)
        if chosen is not None:
            try:
                return np.asarray(chosen.learner.predict_proba(x), dtype=np.float64), self.served_by()
            except Unavailable as exc:  # its process did not answer in time: the others vote
                voters = {n: m for n, m in voters.items() if m is not chosen}
                errors.append(f"{self.choice}: {type(exc).__name__}: {exc}")
                late += 1
        remote = [n for n, m in voters.items() if getattr(m.learner, "remote", False)]
        asked = (
            {n: _ASKING.submit(voters[n].learner.predict_proba, x) for n in remote} if len(remote) > 1 else {}
        )  # fmt: skip
        total: FloatArray | None = None
        weight, answered = 0.0, []
        for name, member in voters.items():
            w = self.weights[name]
            try:
                answer = asked[name].result() if name in asked else member.learner.predict_proba(x)
                p = np.asarray(answer, dtype=np.float64)
            except Exception as exc:  # this member sits this batch out; the others answer
                late += isinstance(exc, Unavailable)
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            if p.shape[0] != len(x) or not np.isfinite(p).all():
                errors.append(f"{name}: probabilities of shape {p.shape}, or not finite")
                continue
            total = w * p if total is None else total + w * p
            weight += w
            answered.append(name)
        if total is None:
            msg = f"no member of the vote could answer ({'; '.join(errors) or 'none has a state yet'})"
            raise Unavailable(msg) if errors and late == len(errors) else RuntimeError(msg)
        out: FloatArray = total / weight
        return out, self._behind({n: voters[n] for n in answered})

    def describe(self) -> dict[str, Any]:
        """For logs and the admin API: members' versions, weights and the guard's choice."""
        return {
            "choice": self.choice,
            "members": {n: {"version": m.version, "weight": self.weights.get(n, 0.0)} for n, m in self.members.items()},
        }
