"""The vote as serving sees it: the portfolio's probabilities are its members' weighted average (or
the guard's one member), a member that cannot answer sits the batch out, the predictions name the
route ``vote`` with the versions and weights behind them, the champion serves until a weighted
member has a state, and a promotion keeps the vote on the board."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from dataflows.portfolio import VOTE_ROUTE, Member, Portfolio
from dataflows.records import Event, Label, SourceRef, encode_predictions
from dataflows.serve import Served, ServingBoard, ServingTable, Unavailable, serve_batch
from evaluators import VOTE


class Fixed:
    """A model that always gives ``p`` (or raises)."""

    n_features, n_classes = 2, 2

    def __init__(self, p: list[float] | None) -> None:
        self.p = p

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.p is None:
            msg = "broken"
            raise RuntimeError(msg)
        return np.tile(self.p, (len(x), 1))


class Late(Fixed):
    """A member asked in its process that did not answer in time."""

    remote = True

    def __init__(self) -> None:
        super().__init__(None)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        msg = "no answer within 50 ms"
        raise Unavailable(msg)


def _event(i: int) -> Event:
    return Event(f"e{i}", [0.0, 1.0], None, SourceRef("events", 0, i, 1_000))


def _table(vote: Portfolio | None) -> ServingTable:
    return ServingTable("default", Served("default/1", Fixed([0.9, 0.1])), vote=vote)  # type: ignore[arg-type]


def _portfolio(**weights: float) -> Portfolio:
    members = {"fork": Member("default/2", Fixed([0.2, 0.8])), "tree": Member("default/3", Fixed([0.6, 0.4]))}  # type: ignore[arg-type]
    return Portfolio(members, weights)


def test_the_vote_serves_the_weighted_average_and_names_what_is_behind_it() -> None:
    out = serve_batch(_table(_portfolio(fork=0.75, tree=0.25)), [_event(i) for i in range(3)], [0, 1], now=2.0)
    assert [p.route for p in out.predictions] == [VOTE_ROUTE] * 3
    first = out.predictions[0]
    assert first.proba == pytest.approx([0.3, 0.7]) and first.prediction == 1
    assert first.version == "default/2" and first.votes == {"default/2": 0.75, "default/3": 0.25}
    wire = orjson.loads(encode_predictions([first], "predictions").values[0])
    assert wire["route"] == "vote" and wire["votes"] == {"default/2": 0.75, "default/3": 0.25}
    champion = serve_batch(_table(None), [_event(0)], [0, 1], now=2.0).predictions[0]
    assert "votes" not in orjson.loads(encode_predictions([champion], "p").values[0])  # omitted when not a vote


def test_the_guards_member_serves_alone() -> None:
    guarded = Portfolio(_portfolio(fork=0.4, tree=0.6).members, {"fork": 0.4, "tree": 0.6}, choice="fork")
    (p,) = serve_batch(_table(guarded), [_event(0)], [0, 1], now=2.0).predictions
    assert p.proba == pytest.approx([0.2, 0.8]) and p.version == "default/2" and p.votes == {"default/2": 1.0}


def test_a_member_that_fails_sits_out_and_the_champion_serves_when_none_can() -> None:
    members = {"fork": Member("default/2", Fixed(None)), "tree": Member("default/3", Fixed([0.6, 0.4]))}  # type: ignore[arg-type]
    out = serve_batch(_table(Portfolio(members, {"fork": 0.9, "tree": 0.1})), [_event(0)], [0, 1], 2.0)
    (p,) = out.predictions
    assert p.route == VOTE_ROUTE and p.proba == pytest.approx([0.6, 0.4])
    assert p.version == "default/3" and p.votes == {"default/3": 1.0}  # only the member that answered is named
    broken = {"fork": Member("default/2", Fixed(None))}  # type: ignore[arg-type]
    out = serve_batch(_table(Portfolio(broken, {"fork": 1.0})), [_event(0)], [0, 1], 2.0)
    (p,) = out.predictions
    assert p.route == "champion" and p.version == "default/1"
    assert out.errors, "a vote none of whose members could answer is an error"
    late = {"fork": Member("default/2", Late()), "tree": Member("default/3", Late())}  # type: ignore[arg-type]
    out = serve_batch(_table(Portfolio(late, {"fork": 0.5, "tree": 0.5})), [_event(0)], [0, 1], 2.0)
    assert [p.route for p in out.predictions] == ["champion"] and not out.errors  # none answered in time: no error
    chosen_late = {"fork": Member("default/2", Late()), "tree": Member("default/3", Fixed([0.6, 0.4]))}  # type: ignore[arg-type]
    out = serve_batch(
        _table(Portfolio(chosen_late, {"fork": 0.9, "tree": 0.1}, choice="fork")), [_event(0)], [0, 1], 2.0
    )
    (p,) = out.predictions
    assert p.route == VOTE_ROUTE and p.votes == {"default/3": 1.0}  # the guard's member was late: the others vote
    (p,) = serve_batch(_table(Portfolio({}, {"fork": 1.0})), [_event(0)], [0, 1], 2.0).predictions
    assert p.route == "champion"  # no member state yet
    tree_only = {"tree": Member("default/3", Fixed([0.6, 0.4]))}  # type: ignore[arg-type]
    chosen_without_state = Portfolio(tree_only, {"fork": 0.7, "tree": 0.3}, choice="fork")
    (p,) = serve_batch(_table(chosen_without_state), [_event(0)], [0, 1], 2.0).predictions
    assert p.route == VOTE_ROUTE and p.proba == pytest.approx([0.6, 0.4])  # the vote stands in


def test_the_board_takes_members_of_the_vote_only_and_keeps_the_vote_through_a_promotion() -> None:
    board = ServingBoard()
    board.publish(_table(None))
    state = Member("default/2", Fixed([0.2, 0.8]))  # type: ignore[arg-type]
    assert not board.serve_member("default", "fork", state)  # no vote yet
    board.set_vote("default", {"fork": 1.0}, VOTE)
    assert board.serve_member("default", "fork", state)
    assert not board.serve_member("default", "stranger", state)
    promoted = board.publish(ServingTable("default", Served("default/4", Fixed([0.5, 0.5]))))  # type: ignore[arg-type]
    assert promoted.vote is not None and promoted.vote.members["fork"] is state
    board.set_vote("default", {"tree": 1.0}, VOTE)  # fork left the vote: its state goes
    vote = board.current("default").vote
    assert vote is not None and dict(vote.members) == {} and not vote.ready
    board.set_vote("default", None, "")
    assert board.current("default").vote is None


def test_a_member_far_behind_the_labels_sits_out_while_the_others_are_fresher() -> None:
    stale = Member("default/2", Fixed([0.2, 0.8]), through=5)  # type: ignore[arg-type]
    fresh = Member("default/3", Fixed([0.6, 0.4]), through=19)  # type: ignore[arg-type]
    vote = Portfolio({"fork": stale, "tree": fresh}, {"fork": 0.9, "tree": 0.1}, seq=20)
    (p,) = serve_batch(_table(vote), [_event(0)], [0, 1], 2.0).predictions
    assert p.proba == pytest.approx([0.6, 0.4]) and p.votes == {"default/3": 1.0}
    everyone_late = Portfolio({"fork": stale}, {"fork": 0.9, "tree": 0.1}, seq=40)
    (p,) = serve_batch(_table(everyone_late), [_event(0)], [0, 1], 2.0).predictions
    assert p.route == VOTE_ROUTE and p.proba == pytest.approx([0.2, 0.8])  # the freshest there is
    caught_up = Portfolio({"fork": stale, "tree": fresh}, {"fork": 0.9, "tree": 0.1}, seq=12)
    (p,) = serve_batch(_table(caught_up), [_event(0)], [0, 1], 2.0).predictions
    assert p.proba == pytest.approx([0.24, 0.76])  # within STALE_JOBS: both vote

    # the guard's member, far behind, does not serve alone while another is fresher
    guarded = Portfolio({"fork": stale, "tree": fresh}, {"fork": 0.9, "tree": 0.1}, choice="fork", seq=20)
    (p,) = serve_batch(_table(guarded), [_event(0)], [0, 1], 2.0).predictions
    assert p.proba == pytest.approx([0.6, 0.4]) and p.votes == {"default/3": 1.0}
    alone = Portfolio({"fork": stale}, {"fork": 0.9, "tree": 0.1}, choice="fork", seq=20)  # no one fresher
    (p,) = serve_batch(_table(alone), [_event(0)], [0, 1], 2.0).predictions
    assert p.proba == pytest.approx([0.2, 0.8]) and p.votes == {"default/2": 1.0}


def test_the_bandit_serves_one_member_per_event_on_its_share_of_the_keys() -> None:
    """Sticky buckets: a member's share of the keys is a stretch of them; each event is served by
    one member alone (its version, route ``bandit``) or by the champion; a member that fails leaves
    its events to the champion."""
    shares = {"fork": 0.2, "tree": 0.3}
    vote = _portfolio(fork=0.5, tree=0.5).with_weights({"fork": 0.5, "tree": 0.5}, VOTE, shares=shares)
    assert vote.ready
    events: list[Event | Label] = [_event(i) for i in range(4000)]
    out = serve_batch(_table(vote), events, [0, 1], 1.0)
    routes = {(p.route, p.version) for p in out.predictions}
    assert routes == {("bandit", "default/2"), ("bandit", "default/3"), ("champion", "default/1")}
    by = {v: sum(p.version == v for p in out.predictions) / len(events) for v in ("default/2", "default/3")}
    assert by["default/2"] == pytest.approx(0.2, abs=0.03) and by["default/3"] == pytest.approx(0.3, abs=0.03)
    assert all(p.votes is None for p in out.predictions)
    assert all(p.proba == [0.2, 0.8] for p in out.predictions if p.version == "default/2")
    again = serve_batch(_table(vote), events, [0, 1], 2.0)  # the same keys, the same members
    assert [p.version for p in again.predictions] == [p.version for p in out.predictions]

    broken = Portfolio({"fork": Member("default/2", Fixed(None))}, {"fork": 1.0}, shares={"fork": 0.5})  # type: ignore[arg-type]
    served = serve_batch(_table(broken), events[:200], [0, 1], 3.0)
    assert {p.route for p in served.predictions} == {"champion"} and served.errors
    assert not Portfolio({}, {"fork": 1.0}, shares={"fork": 0.5}).ready  # no state yet: the champion serves
