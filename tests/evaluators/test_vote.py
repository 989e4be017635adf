"""The weighted vote: weights move to the members that are right, come back after a switch of
leader thanks to the fixed share, a member that did not score keeps its place, the guard serves the
leading member when the vote does worse, and over simulated experts whose lead changes hands the
vote tracks the best and beats every single one."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from evaluators.vote import VOTE, WeightedVote


def _expert(y: npt.NDArray[np.int64], accuracy: npt.NDArray[np.float64], rng: np.random.Generator) -> np.ndarray:
    """Probabilities of a 2-class expert right with probability ``accuracy[t]`` on example ``t``."""
    right = rng.random(len(y)) < accuracy
    guess = np.where(right, y, 1 - y)
    confidence = 0.6 + 0.3 * rng.random(len(y))
    out = np.empty((len(y), 2))
    out[np.arange(len(y)), guess] = confidence
    out[np.arange(len(y)), 1 - guess] = 1 - confidence
    return out


def _served_accuracy(vote: WeightedVote, probas: dict[str, np.ndarray], y: np.ndarray, batch: int = 100) -> float:
    """Prequential accuracy of what ``vote.choice`` serves, batch by batch (labels after serving)."""
    right = 0
    for start in range(0, len(y), batch):
        part = {name: p[start : start + batch] for name, p in probas.items()}
        choice = vote.choice()
        served = vote.combine(part) if choice == VOTE else part[choice]
        right += int((np.argmax(served, axis=1) == y[start : start + batch]).sum())
        vote.update(part, y[start : start + batch])
    return right / len(y)


def test_weights_start_even_sum_to_one_and_move_to_the_member_that_is_right() -> None:
    vote = WeightedVote(["a", "b", "c"])
    assert vote.weights() == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    probas = {"a": _expert(y, np.full(300, 0.9), rng), "b": _expert(y, np.full(300, 0.6), rng),
              "c": _expert(y, np.full(300, 0.5), rng)}  # fmt: skip
    vote.update(probas, y)
    w = vote.weights()
    assert sum(w.values()) == pytest.approx(1.0)
    assert w["a"] > 0.9 and w["b"] > w["c"] * 0.1
    assert vote.leader() == "a"
    assert min(w.values()) >= vote.share / 3 * 0.99  # the floor fixed share keeps


def test_after_a_switch_of_leader_the_fixed_share_brings_the_new_one_back_quickly() -> None:
    rng = np.random.default_rng(2)
    n = 4000
    y = rng.integers(0, 2, n)
    a_acc = np.where(np.arange(n) < 3000, 0.9, 0.55)  # a leads for 3,000 examples, then b
    b_acc = np.where(np.arange(n) < 3000, 0.55, 0.9)
    probas = {"a": _expert(y, a_acc, rng), "b": _expert(y, b_acc, rng)}
    taken = {}
    for share in (0.002, 0.0):
        vote = WeightedVote(["a", "b"], share=share)
        vote.update({k: p[:3000] for k, p in probas.items()}, y[:3000])
        for t in range(3000, n, 10):
            vote.update({k: p[t : t + 10] for k, p in probas.items()}, y[t : t + 10])
            if vote.weights()["b"] > 0.5:
                taken[share] = t + 10 - 3000
                break
    # log(n / share) / (eta * the gap in loss) examples, about 60: within a couple of hundred
    assert taken[0.002] <= 200
    assert 0.0 not in taken or taken[0.0] > 3 * taken[0.002]  # without the share, far slower (or never)


def test_a_member_that_did_not_score_neither_gains_nor_loses_against_the_others() -> None:
    vote = WeightedVote(["a", "b", "c"], share=0.0)
    y = np.array([1, 1, 1, 1])
    right, wrong = np.tile([0.1, 0.9], (4, 1)), np.tile([0.9, 0.1], (4, 1))
    skipped = np.full((4, 2), np.nan)
    vote.update({"a": right, "b": wrong, "c": skipped}, y)
    w = vote.weights()
    assert w["a"] > w["c"] > w["b"]
    vote2 = WeightedVote(["a", "b", "c"], share=0.0)
    vote2.update({"a": right, "b": wrong}, y)  # missing altogether: the same
    assert vote2.weights() == pytest.approx(w)
    assert vote.faded_accuracy()["c"] is None


def test_combine_is_the_weighted_average_and_leaves_out_who_has_no_row() -> None:
    vote = WeightedVote(["a", "b"])
    a, b = np.array([[0.2, 0.8]]), np.array([[0.6, 0.4]])
    assert vote.combine({"a": a, "b": b})[0].tolist() == pytest.approx([0.4, 0.6])
    assert vote.combine({"a": a, "b": np.full((1, 2), np.nan)})[0].tolist() == pytest.approx([0.2, 0.8])
    with pytest.raises(ValueError, match="not members"):
        vote.combine({"z": a})
    with pytest.raises(ValueError, match="same shape"):
        vote.combine({"a": a, "b": np.ones((2, 2)) / 2})


def test_the_guard_serves_the_leader_when_the_vote_does_worse() -> None:
    """Four weak members that agree outvote one strong member at first: the strong one serves."""
    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 2, n)
    crowd = _expert(y, np.full(n, 0.55), rng)
    probas = {"strong": _expert(y, np.full(n, 0.95), rng), **{f"weak{i}": crowd.copy() for i in range(4)}}
    vote = WeightedVote(list(probas), eta=0.05)  # weights move slowly: the crowd keeps the vote for a while
    assert vote.choice() == VOTE  # no evidence: the vote
    vote.update({k: p[:200] for k, p in probas.items()}, y[:200])
    acc = vote.faded_accuracy()
    strong, voted = acc["strong"], acc[VOTE]
    assert strong is not None and voted is not None and strong > voted
    assert vote.choice() == "strong"


def test_over_experts_whose_lead_changes_hands_the_vote_beats_every_one() -> None:
    """Three experts, each the best on a third of the stream (and fair elsewhere): what the vote
    serves beats each of them alone, and every one of them by more than on a stream with one leader."""
    rng = np.random.default_rng(4)
    n, third = 9000, 3000
    y = rng.integers(0, 2, n)
    t = np.arange(n)
    probas = {name: _expert(y, np.where((t // third) == i, 0.92, 0.7), rng) for i, name in enumerate("abc")}
    served = _served_accuracy(WeightedVote(list(probas)), probas, y)
    alone = {name: float((np.argmax(p, axis=1) == y).mean()) for name, p in probas.items()}
    assert served > max(alone.values()) + 0.05, (served, alone)
    # one clear leader throughout: the vote tracks it within a point
    steady = {"a": _expert(y, np.full(n, 0.9), rng), "b": _expert(y, np.full(n, 0.75), rng),
              "c": _expert(y, np.full(n, 0.7), rng)}  # fmt: skip
    served_steady = _served_accuracy(WeightedVote(list(steady)), steady, y)
    best = float((np.argmax(steady["a"], axis=1) == y).mean())
    assert served_steady >= best - 0.01, (served_steady, best)


def test_members_come_and_go() -> None:
    vote = WeightedVote(["a", "b"])
    vote.update({"a": np.array([[0.1, 0.9]]), "b": np.array([[0.9, 0.1]])}, [1])
    vote.add("c")
    w = vote.weights()
    assert w["c"] == pytest.approx(1 / 3) and sum(w.values()) == pytest.approx(1.0)
    assert vote.faded_accuracy()["c"] is None and vote.faded_accuracy()["a"] == 1.0
    vote.remove("a")
    assert vote.members == ["b", "c"] and sum(vote.weights().values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="member already"):
        vote.add("b")
    with pytest.raises(ValueError, match="last one"):
        WeightedVote(["x"]).remove("x")


def test_deterministic_and_its_settings_are_checked() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 50)
    probas = {k: rng.dirichlet(np.ones(3), 50) for k in "ab"}
    one, two = WeightedVote(["a", "b"]), WeightedVote(["a", "b"])
    one.update(probas, y)
    two.update(probas, y)
    assert one.weights() == two.weights() and one.faded_accuracy() == two.faded_accuracy()
    for bad in ({"eta": 0}, {"share": 1.0}, {"fade": 1.0}):
        with pytest.raises(ValueError, match="eta must be"):
            WeightedVote(["a"], **bad)
    with pytest.raises(ValueError, match="each named once"):
        WeightedVote(["a", "a"])
    with pytest.raises(ValueError, match="3 labels but 50 rows"):
        one.update(probas, y[:3])


def test_the_weights_follow_fixed_share_example_by_example() -> None:
    """`update` is Herbster and Warmuth's fixed share, one example at a time: checked against the
    recursion written out, on a batch every member scored (the plain-float path) and on one where
    a member's rows are missing (the general path: it is charged the mix's loss)."""
    rng = np.random.default_rng(11)
    eta, share = 0.7, 0.01
    vote = WeightedVote(["a", "b", "c"], eta=eta, share=share)
    probas = {m: rng.dirichlet(np.ones(3), 200) for m in "abc"}
    y = rng.integers(0, 3, 200)
    w = np.full(3, 1 / 3)
    for t in range(200):
        loss = np.array([float(np.argmax(probas[m][t]) != y[t]) for m in "abc"])
        w = w * np.exp(-eta * loss)
        w = (1 - share) * w / w.sum() + share / 3
    vote.update(probas, y)
    assert list(vote.weights().values()) == pytest.approx(list(w / w.sum()), abs=1e-12)
    gap = {"a": probas["a"].copy(), "b": probas["b"], "c": probas["c"]}
    gap["a"][:100] = np.nan  # a did not score the first half
    other = WeightedVote(["a", "b", "c"], eta=eta, share=share)
    other.update(gap, y)
    w = np.full(3, 1 / 3)
    for t in range(200):
        loss = np.array([float(np.argmax(gap[m][t]) != y[t]) if not np.isnan(gap[m][t][0]) else np.nan for m in "abc"])
        has = ~np.isnan(loss)
        loss[~has] = np.dot(w[has], loss[has]) / w[has].sum()
        w = w * np.exp(-eta * loss)
        w = (1 - share) * w / w.sum() + share / 3
    assert list(other.weights().values()) == pytest.approx(list(w / w.sum()), abs=1e-12)
