"""The vote as the train step drives it: its members are the group's candidates (an operator's new
candidate joins, a retired one leaves, with its state off the board), the weights learn from the
members' answers and go to the board and the metrics, and they survive a snapshot and a resume."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

from dataflows.config import CandidateSpec, VoteSpec
from dataflows.lanes import ProcessLane
from dataflows.lanes.ask import LiveModel
from dataflows.records import DecisionRecord, Event
from dataflows.train import TrainLogic
from dataflows.train import vote as vote_step
from evaluators import VOTE
from learners import LearnerSpec
from tests.dataflows.helpers import Group, Stream, config, context, make_group, trained_learner
from tests.dataflows.train.test_commands import Operator

ALT = CandidateSpec("alt", LearnerSpec("river-logreg", {"lr": 0.5}))


def _group(tmp_path: Path) -> Group:
    quiet = config(candidates=(CandidateSpec("fork"), ALT), min_samples=5000, max_samples=5000, probation_samples=5000)
    cfg = dataclasses.replace(quiet, vote=VoteSpec(eta=1.0))
    return make_group(cfg, tmp_path, champion=trained_learner())


def test_the_members_are_the_candidates_and_their_weights_reach_the_board(tmp_path: Path) -> None:
    group, stream = _group(tmp_path), Stream(1)
    vote = group.logic.state.vote
    assert vote is not None and vote.members == ["fork", "alt"]
    group.run(stream, 6)
    served = group.table.vote
    assert served is not None and set(served.members) == {"fork", "alt"}
    assert dict(served.weights) == pytest.approx(vote.weights()) and served.choice == vote.choice()
    assert vote.weights() != {"fork": 0.5, "alt": 0.5}, "the weights learned nothing"
    assert {m.version for m in served.members.values()} == {lane.version for name, lane in group.logic.lanes.items()
                                                            if name in ("fork", "alt")}  # fmt: skip
    out = group.serve(stream.batch(10))
    assert {p.route for p in out.predictions} == {"vote"}
    group.logic.close()


def test_a_new_candidate_joins_the_vote_and_a_retired_one_leaves_it(tmp_path: Path) -> None:
    group, stream = _group(tmp_path), Stream(2)
    ops = Operator(group)
    group.run(stream, 3)
    record, _ = ops.send("retire", {"model": "alt"})
    assert record.outcome == "applied"
    vote = group.logic.state.vote
    assert vote is not None and vote.members == ["fork"] and vote.weights() == {"fork": 1.0}
    served = group.table.vote
    assert served is not None and set(served.members) == {"fork"} and set(served.weights) == {"fork"}
    record, _ = ops.send("add_candidate", {"candidate": {"name": "extra", "learner": "river-logreg"}})
    assert record.outcome == "applied", record.detail
    assert vote.members == ["fork", "extra"] and vote.weights()["extra"] == pytest.approx(0.5)
    group.run(stream, 2)
    served = group.table.vote
    assert served is not None and set(served.members) == {"fork", "extra"}
    group.logic.close()


def test_the_weights_survive_a_snapshot_and_a_resume(tmp_path: Path) -> None:
    group, stream = _group(tmp_path), Stream(3)
    group.run(stream, 6)
    before = group.logic.state.vote
    assert before is not None
    weights, accuracy = before.weights(), before.faded_accuracy()
    snapshot = pickle.loads(pickle.dumps(group.logic.take_snapshot()))
    group.run(stream, 2)  # the live state moves on; the snapshot does not
    group.logic.close()
    resumed = TrainLogic(snapshot, context(group.config, group.deps))
    vote = resumed.state.vote
    assert vote is not None and vote is not before
    assert vote.weights() == weights and vote.faded_accuracy() == accuracy
    served = group.table.vote
    assert served is not None and dict(served.weights) == pytest.approx(weights)
    assert served.choice in (VOTE, "fork", "alt")
    resumed.close()


def test_a_member_that_comes_to_weigh_clearly_more_takes_the_lead_as_a_decision(tmp_path: Path) -> None:
    group, stream = _group(tmp_path), Stream(4)
    group.run(stream, 2)
    rt = group.logic.rt
    vote = rt.state.vote
    assert vote is not None
    first = max(vote.weights(), key=vote.weights().__getitem__)
    other = next(n for n in vote.members if n != first)
    y = np.zeros(50, dtype=np.int64)
    right, wrong = np.tile([0.9, 0.1], (50, 1)), np.tile([0.1, 0.9], (50, 1))
    vote.update({other: right[:1], first: wrong[:1]}, y[:1])  # a nudge: not enough to lead by 0.1
    nudged = [r for r in vote_step.sync(rt, 1) if isinstance(r, DecisionRecord)]
    vote.update({other: right, first: wrong}, y)  # now clearly ahead
    crossed = [r for r in vote_step.sync(rt, 2) if isinstance(r, DecisionRecord)]
    assert nudged == [] and [(d.action, d.version, d.previous) for d in crossed] == [
        ("lead", rt.lanes[other].version, rt.lanes[first].version)
    ]
    evidence = {k: float(str(v)) for k, v in crossed[0].evidence.items()}
    assert evidence[f"weight_{other}"] - evidence[f"weight_{first}"] >= 0.1
    logged = [d for d in group.deps.registry.decisions("default") if d.action == "lead"]
    assert [(d.version, d.previous) for d in logged] == [(crossed[0].version, crossed[0].previous)]
    assert [r for r in vote_step.sync(rt, 3) if isinstance(r, DecisionRecord)] == []  # once per crossing
    group.logic.close()


def test_members_learning_in_processes_serve_from_their_processes(tmp_path: Path) -> None:
    """With process lanes, each member's process answers serving (asked at once, over its own
    pipe): the vote is the weighted average of the models as the processes hold them, nothing is
    handed back after a batch, and when one member's process dies the other serves alone."""
    quiet = config(candidates=(CandidateSpec("fork"), ALT), min_samples=5000, max_samples=5000,
                   probation_samples=5000, threaded=True, processes=True)  # fmt: skip
    group = make_group(dataclasses.replace(quiet, vote=VoteSpec(eta=1.0)), tmp_path, champion=trained_learner())
    stream = Stream(3)
    try:
        lanes = {name: group.logic.lanes[name] for name in ("fork", "alt")}
        assert all(isinstance(lane, ProcessLane) and lane.serves for lane in lanes.values())
        for _ in range(40):
            group.run(stream, 1)
            assert all(lane.wait_idle(timeout_s=60) for lane in lanes.values())
            served = group.table.vote
            if served is not None and all(isinstance(m.learner, LiveModel) for m in served.members.values()):
                break
        served = group.table.vote
        assert served is not None and set(served.members) == {"fork", "alt"}
        assert all(isinstance(m.learner, LiveModel) for m in served.members.values()), served.members
        probe = Stream(83).batch(30, labelled=False)
        x = np.asarray([e.x for e in probe if isinstance(e, Event)])
        out = group.serve(probe)
        assert {p.route for p in out.predictions} == {"vote"} and not out.errors
        for p in out.predictions:
            assert set(p.votes or {}) == {lane.version for lane in lanes.values()}
        weights = dict(served.weights)
        total = sum(weights.values())
        expected = sum(w / total * lanes[n].frozen().predict_proba(x) for n, w in weights.items())
        np.testing.assert_allclose([p.proba for p in out.predictions], expected, atol=1e-9)
        group.run(stream, 1)
        assert all(lane.wait_idle(timeout_s=60) for lane in lanes.values())
        assert group.table.vote is not None
        assert group.table.vote.members["fork"].learner is served.members["fork"].learner  # the same process answers

        alt = lanes["alt"]
        assert isinstance(alt, ProcessLane)
        process = alt._process
        assert process is not None
        process.kill()
        process.join(10)
        out = group.serve(probe)
        assert {p.route for p in out.predictions} == {"vote"}
        assert {v for p in out.predictions for v in (p.votes or {})} == {lanes["fork"].version}
    finally:
        group.logic.close()
