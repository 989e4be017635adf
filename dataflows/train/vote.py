"""The portfolio's vote, as the train step drives it (`model.vote`): the candidates serve together
on the champion's route, weighted by `evaluators.WeightedVote` (serving's side: `dataflows.portfolio`).

- `sync` (at the start and after every collect): the vote's members are the group's candidates
  (a restart model, the standby and the champion are not); each member's thread lane hands its
  latest state to the board after the batches it learns, a process lane its process to ask
  (`dataflows.lanes.live.MemberRefresh`, armed
  again when the lane's version changes: a promotion, a refork), and a member the board has no
  state of (after a restart, or new) serves a copy of its model at once; the weights and the
  guard's choice go to the board when they change.
- `submitted`: the labels of each job handed to the lanes, kept until every member scored it.
- `observe` (while collecting): each member's probabilities for a job; once every member has
  answered for a job (scored, or skipped it), the weights learn from it (`settle`). A job some
  member never answers for (it left the vote) is settled with the others after
  ``4 * max_lag_batches`` jobs.

When another member comes to weigh clearly more than the one that led (`LEAD_MARGIN`), a ``lead``
decision is recorded in the registry and sent, naming both versions and the weights.

The weights are the group's state (`GroupState.vote`), snapshotted and recovered with it; the
labels and answers waiting for the other members are not (a restart settles none of them: the
weights miss at most a few batches).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from dataflows.jobs import Job, LaneResult
from dataflows.lanes.live import MemberRefresh
from dataflows.portfolio import Member
from dataflows.ports import Decision
from dataflows.records import VoteRecord
from dataflows.train import bandit
from dataflows.train.state import GroupRuntime, TrainOutput, decision_record
from evaluators.vote import WeightedVote

__all__ = ["observe", "submitted", "sync"]

log = logging.getLogger("headwater")

MOVED = 0.05  # a weight that moved by this much since the last vote record makes a new one
LEAD_MARGIN = 0.1  # another member leads (a `lead` decision) once it weighs this much more than the leader


def members(rt: GroupRuntime) -> list[str]:
    """The vote's members: the group's candidates (slots with a spec), in their order."""
    return [name for name, slot in rt.state.slots.items() if slot.spec is not None]


def sync(rt: GroupRuntime, now_ms: int) -> list[TrainOutput]:
    """Bring the vote in line with the group's candidates, arm their lanes, publish the weights;
    a `VoteRecord` for the model-events topic when the lead changed hands, the guard chose
    otherwise, or a weight moved by `MOVED` since the last one."""
    spec, board, state = rt.ctx.config.vote, rt.ctx.board, rt.state
    if spec is None or board is None:
        return []
    names = members(rt)
    vote = state.vote
    if not names:
        bandit.gate(rt, [])
        if vote is not None:
            state.vote = None
            board.set_vote(state.name, None, "")
            rt.ctx.metrics.voted(state.name, {}, "")
        return []
    if vote is None or not set(vote.members) & set(names):
        vote = state.vote = WeightedVote(names, eta=spec.eta, share=spec.share, fade=spec.fade)
    for name in [n for n in vote.members if n not in names]:
        vote.remove(name)
        rt.vote_answers = {seq: {k: v for k, v in a.items() if k != name} for seq, a in rt.vote_answers.items()}
    for name in [n for n in names if n not in vote.members]:
        vote.add(name)
    weights, choice = vote.weights(), vote.choice()
    bandit.gate(rt, names)
    out = bandit.decide(rt, now_ms)
    shares = bandit.shares(rt)  # a Monte Carlo estimate with a bandit: once per sync
    board.set_vote(state.name, weights, choice, state.seq, shares)
    rt.ctx.metrics.voted(state.name, weights, choice)
    for name in names:
        lane = rt.lanes[name]
        live = lane.live
        if isinstance(live, MemberRefresh) and live.fork == lane.version and live.error is None:
            continue
        if live is not None and live.error is not None:
            log.warning("group %s: %s (%s) hands serving no state any more: %s", state.name, name, lane.version,
                        live.error)  # fmt: skip
            continue
        budget = rt.ctx.config.gate.live_refresh_budget
        lane.set_live(MemberRefresh(rt.ctx.promoter, state.name, "", lane.version, budget, member=name, board=board))
        served = board.current(state.name).vote
        if served is not None and name not in served.members:
            # A restart (the board is not snapshotted) or a new member: its model as it is serves
            # at once, not only after its next learned batch.
            board.serve_member(state.name, name, Member(lane.version, lane.frozen()))
    return [*out, *_record(rt, vote, weights, choice, shares, now_ms)]


def _lead(rt: GroupRuntime, weights: dict[str, float], now_ms: int) -> list[TrainOutput]:
    """A ``lead`` decision when another member now weighs `LEAD_MARGIN` more than the one that
    led (recorded in the registry and sent as a decision): the vote's crossings, not its jitter."""
    leader = max(weights, key=weights.__getitem__)
    led = rt.vote_leader
    if led is None or led not in weights:
        rt.vote_leader = leader
        return []
    if leader == led or weights[leader] - weights[led] < LEAD_MARGIN:
        return []
    state, ctx = rt.state, rt.ctx
    new, old = rt.lanes[leader].version, rt.lanes[led].version
    reason = (f"in the vote, {leader} ({new}) now weighs {weights[leader]:.2f}, over {led} ({old}) at "
              f"{weights[led]:.2f}, which led before")  # fmt: skip
    decision = Decision(state.name, "lead", new, reason, now_ms, previous=old,
                        evidence={f"weight_{n}": round(w, 4) for n, w in weights.items()})  # fmt: skip
    ctx.registry.record_decision(decision)
    ctx.metrics.decided(state.name, "lead")
    rt.vote_leader = leader
    return [decision_record(decision)]


def _record(
    rt: GroupRuntime,
    vote: WeightedVote,
    weights: dict[str, float],
    choice: str,
    shares: dict[str, float] | None,
    now_ms: int,
) -> list[TrainOutput]:
    last = rt.vote_sent
    out = _lead(rt, weights, now_ms) if shares is None else []  # the bandit serves one member: no vote to lead
    if last is not None and last.choice == choice and set(last.weights) == set(weights):
        lead = max(weights, key=weights.__getitem__)
        moved = max(abs(w - last.weights[n]) for n, w in weights.items())
        if shares is not None and last.shares is not None and set(shares) == set(last.shares):
            moved = max(moved, *(abs(s - last.shares[n]) for n, s in shares.items()))
        elif shares != last.shares:
            moved = MOVED
        if lead == max(last.weights, key=last.weights.__getitem__) and moved < MOVED:
            return out
    versions = {name: rt.lanes[name].version for name in weights}
    accuracy = {name: None if a is None else round(a, 4) for name, a in vote.faded_accuracy().items()}
    record = VoteRecord(group=rt.state.name, ts_ms=now_ms, weights={n: round(w, 4) for n, w in weights.items()},
                        versions=versions, choice=choice, accuracy=accuracy,
                        shares=None if shares is None else {n: round(s, 4) for n, s in shares.items()})  # fmt: skip
    rt.vote_sent = record
    return [*out, record]


def submitted(rt: GroupRuntime, job: Job | None) -> None:
    """Keep ``job``'s labels until every member has scored it."""
    if rt.state.vote is not None and job is not None and len(job):
        rt.vote_labels[job.seq] = job.y


def observe(rt: GroupRuntime, name: str, result: LaneResult) -> None:
    """Member ``name``'s answer for a job (probabilities, or none: it skipped it or could not
    predict); settle the jobs every member has answered for."""
    vote = rt.state.vote
    if vote is None or name not in vote.members or result.seq not in rt.vote_labels:
        return
    rt.vote_answers.setdefault(result.seq, {})[name] = result.proba
    settle(rt)


def settle(rt: GroupRuntime) -> None:
    """Teach the weights the jobs every member answered for, and those too old to wait for more."""
    vote = rt.state.vote
    if vote is None:
        return
    oldest = rt.state.seq - 4 * rt.ctx.config.gate.max_lag_batches
    everyone = set(vote.members)
    for seq in sorted(rt.vote_answers):
        answers = rt.vote_answers[seq]
        if set(answers) < everyone and seq >= oldest:
            continue
        del rt.vote_answers[seq]
        y = rt.vote_labels.pop(seq)
        probas: dict[str, npt.NDArray[np.float64]] = {k: p for k, p in answers.items() if p is not None}
        if probas:
            vote.update(probas, y)
    for seq in [s for s in rt.vote_labels if s < oldest and s not in rt.vote_answers]:
        del rt.vote_labels[seq]
