"""The portfolio served one member per event (`model.vote.policy: bandit`), as the train step drives
it: `evaluators.BanditGate` over the vote's members (the group's candidates) against the champion.

- `observe` (while collecting, beside `vote.observe`): each lane's per-example correctness on a job
  (every member scores every labelled example before it learns it, and the champion scores it);
  once the champion and every member answered for a job, the gate learns it. A job some member
  skipped is left out (the gate's evidence is paired).
- `shares` (from `vote.sync`, after every collect): each member's share of the keys, for the
  board (`dataflows.portfolio.Portfolio.arms`: sticky buckets, one member per event on the
  champion's route; the champion serves the rest).
- `decide` (from `vote.sync`): a gate that passed promotes its winner through the promoter, as a
  trial would (the golden set is checked; the gate then starts over against the new champion);
  one that failed or ran out of samples starts over. With the bandit, the candidates' own trials
  take no evidence (`evidence.feed`): the gate is their trial.

The gate is the group's state (`GroupState.bandit`), snapshotted and recovered; the answers of jobs
not every lane has answered for are not (a restart misses those few).
"""

from __future__ import annotations

import logging

import numpy as np

from dataflows.jobs import LaneResult
from dataflows.train import lifecycle
from dataflows.train.state import GroupRuntime, TrainOutput
from dataflows.train.trials import CHAMPION_SLOT
from evaluators import Phase
from evaluators.bandit import BanditGate

__all__ = ["decide", "observe", "shares"]

log = logging.getLogger("headwater")


def gate(rt: GroupRuntime, members: list[str]) -> BanditGate | None:
    """The group's gate over ``members`` (a new one when they changed); None without a bandit."""
    vote = rt.ctx.config.vote
    if vote is None or vote.bandit is None or not members:
        rt.state.bandit = None
        return None
    current = rt.state.bandit
    if current is None or current.candidates != members:
        b = vote.bandit
        current = rt.state.bandit = BanditGate(
            members, policy=b.allocation, discount=b.discount, threshold=b.threshold, min_samples=b.min_samples,
            max_samples=b.max_samples, alpha=rt.ctx.config.gate.alpha, ceiling=b.ceiling, floor=b.floor,
        )  # fmt: skip
        rt.bandit_answers.clear()
    return current


def observe(rt: GroupRuntime, name: str, result: LaneResult) -> None:
    """Lane ``name``'s correctness on a job; the gate learns the jobs every arm answered for."""
    g = rt.state.bandit
    if g is None or (name != CHAMPION_SLOT and name not in g.candidates):
        return
    answers = rt.bandit_answers.setdefault(result.seq, {})
    answers[name] = None if result.skipped or result.error else result.correct
    arms = [CHAMPION_SLOT, *g.candidates]
    for seq in sorted(rt.bandit_answers):
        got = rt.bandit_answers[seq]
        if set(got) < set(arms):
            if seq < rt.state.seq - 4 * rt.ctx.config.gate.max_lag_batches:
                del rt.bandit_answers[seq]  # some arm will never answer: too old
            continue
        del rt.bandit_answers[seq]
        scores = [got[a] for a in arms]
        lengths = {len(s) for s in scores if s is not None}
        if all(s is not None for s in scores) and len(lengths) == 1 and 0 not in lengths:
            g.update({c: np.asarray(got[c]) for c in g.candidates}, np.asarray(got[CHAMPION_SLOT]))


def shares(rt: GroupRuntime) -> dict[str, float] | None:
    """Each member's share of the keys now (None: no bandit)."""
    g = rt.state.bandit
    if g is None:
        return None
    return {c: share for c, share in g.shares().items() if c in g.candidates}


def decide(rt: GroupRuntime, now_ms: int) -> list[TrainOutput]:
    """Promote the gate's winner once it passed; start over after any final verdict."""
    g = rt.state.bandit
    if g is None or rt.state.decisions_frozen:
        return []
    verdict = g.verdict()
    if not verdict.phase.final:
        return []
    out: list[TrainOutput] = []
    if verdict.phase is Phase.PASSED:
        winner = str(verdict.evidence["winner"])
        log.info("group %s: the bandit gate passed %s: %s", rt.state.name, winner, verdict.reason)
        out = lifecycle.promote(rt, winner, verdict, now_ms, by="the bandit gate")
        if not out:  # not enough trusted history for the golden set yet: it waits, as a trial does
            return out
    else:
        log.info("group %s: the bandit gate starts over: %s", rt.state.name, verdict.reason)
    g.reset()
    rt.bandit_answers.clear()
    return out
