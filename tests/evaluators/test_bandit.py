"""`BanditGate` on simulated arms: it promotes the clearly better of three candidates, promotes none
of three that are as good as the champion (false promotions within the bound over 20 seeded runs),
moves the canary traffic to the best arm, and keeps the evaluators' contract (pending before its
minimum, deterministic, a pickle round trip, readable verdicts)."""

from __future__ import annotations

import doctest
import pickle

import numpy as np
import pytest

import evaluators.bandit
from evaluators import Phase
from evaluators.bandit import CHAMPION, BanditGate

BATCH = 50


def _feed(gate: BanditGate, rng: np.random.Generator, accuracy: dict[str, float]) -> None:
    scores = {arm: (rng.random(BATCH) < p).astype(float) for arm, p in accuracy.items()}
    gate.update({c: scores[c] for c in gate.candidates}, scores[CHAMPION])


def _run(seed: int, accuracy: dict[str, float], examples: int = 20_000, **how: float) -> tuple[str | None, int]:
    """Read the gate after every batch: the winner it first passed (None) and after how many labels."""
    gate = BanditGate([a for a in accuracy if a != CHAMPION], seed=seed, **how)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    for _ in range(examples // BATCH):
        _feed(gate, rng, accuracy)
        verdict = gate.verdict()
        if verdict.phase is Phase.PASSED:
            return str(verdict.evidence["winner"]), int(verdict.evidence["n"])  # type: ignore[arg-type]
    return None, examples


def test_doctest() -> None:
    assert doctest.testmod(evaluators.bandit).failed == 0


def test_the_clearly_better_of_three_canaries_is_promoted() -> None:
    accuracy = {CHAMPION: 0.75, "a": 0.75, "b": 0.75, "c": 0.82}
    runs = [_run(seed, accuracy) for seed in range(20)]
    assert [w for w, _ in runs].count("c") == 20, runs
    assert max(n for _, n in runs) <= 10_000, runs


def test_three_canaries_as_good_as_the_champion_are_not_promoted() -> None:
    """alpha = 0.05 bounds the false-promotion rate of a run: over 20 runs, at most one (a binomial
    count with p = 0.05 is above 1 in 26 % of sets of 20; the always-valid bound is conservative)."""
    accuracy = {CHAMPION: 0.75, "a": 0.75, "b": 0.75, "c": 0.75}
    runs = [_run(seed, accuracy) for seed in range(100, 120)]
    promoted = [w for w, _ in runs if w is not None]
    assert len(promoted) <= 1, runs


def test_better_than_the_champion_is_not_enough_while_another_is_better_still() -> None:
    accuracy = {CHAMPION: 0.70, "good": 0.76, "best": 0.85}
    runs = [_run(seed, accuracy) for seed in range(10)]
    assert {w for w, _ in runs} == {"best"}, runs


@pytest.mark.parametrize("policy", ["thompson", "ucb"])
def test_the_canary_traffic_moves_to_the_best_arm(policy: str) -> None:
    gate = BanditGate(["a", "b", "c"], policy=policy, ceiling=0.6, floor=0.05, seed=3)
    before = gate.shares()
    assert before[CHAMPION] == pytest.approx(0.4) and sum(before.values()) == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    for _ in range(40):
        _feed(gate, rng, {CHAMPION: 0.7, "a": 0.6, "b": 0.9, "c": 0.7})
    after = gate.shares()
    assert sum(after.values()) == pytest.approx(1.0) and after[CHAMPION] == pytest.approx(0.4)
    assert after["b"] > 0.45 and min(after["a"], after["c"]) == pytest.approx(0.6 * 0.05, abs=0.01)


def test_a_discounted_arm_is_believed_again_after_a_drift() -> None:
    gate = BanditGate(["a", "b"], discount=0.995, seed=4)
    rng = np.random.default_rng(4)
    for _ in range(100):
        _feed(gate, rng, {CHAMPION: 0.7, "a": 0.9, "b": 0.6})
    assert gate.p_best()["a"] > 0.99
    for _ in range(30):  # 1,500 labels after the drift: b leads now
        _feed(gate, rng, {CHAMPION: 0.7, "a": 0.6, "b": 0.9})
    assert gate.p_best()["b"] > 0.99


def test_every_candidate_worse_fails_and_too_long_is_inconclusive() -> None:
    gate, rng = BanditGate(["a", "b"], seed=5), np.random.default_rng(5)
    for _ in range(100):
        _feed(gate, rng, {CHAMPION: 0.9, "a": 0.7, "b": 0.6})
    assert gate.verdict().phase is Phase.FAILED
    gate = BanditGate(["a", "b"], seed=6, max_samples=2000)
    for _ in range(40):
        _feed(gate, rng, {CHAMPION: 0.8, "a": 0.8, "b": 0.8})
    assert gate.verdict().phase is Phase.INCONCLUSIVE


def test_the_contract_pending_deterministic_picklable_readable() -> None:
    gate, rng = BanditGate(["a", "b"], min_samples=300, seed=7), np.random.default_rng(7)
    assert gate.verdict().phase is Phase.PENDING
    for _ in range(5):
        _feed(gate, rng, {CHAMPION: 0.0, "a": 1.0, "b": 1.0})
    assert gate.verdict().phase is Phase.PENDING  # 250 labels, however one-sided
    copy = pickle.loads(pickle.dumps(gate))  # mid-trial, as a snapshot holds it
    twin, twin_rng = BanditGate(["a", "b"], min_samples=300, seed=7), np.random.default_rng(7)
    for _ in range(5):  # the same labels into a gate of the same seed
        _feed(twin, twin_rng, {CHAMPION: 0.0, "a": 1.0, "b": 1.0})
    rng_a, rng_b, rng_c = (np.random.default_rng(8) for _ in range(3))
    for _ in range(20):
        for g, r in ((gate, rng_a), (copy, rng_b), (twin, rng_c)):
            _feed(g, r, {CHAMPION: 0.6, "a": 0.7, "b": 0.8})
        assert gate.verdict() == copy.verdict() == twin.verdict()
        assert gate.shares() == copy.shares() == twin.shares()
    verdict = gate.verdict()
    assert verdict.phase is Phase.PASSED and verdict.reason.startswith("b is the best arm")
    assert {"winner", "n", "low", "high", "p_best_b"} <= set(verdict.evidence)
    gate.reset()
    assert gate.verdict().phase is Phase.PENDING


def test_route_gives_each_candidate_a_stretch_of_buckets() -> None:
    shares = {CHAMPION: 0.5, "a": 0.1, "b": 0.4}
    assert BanditGate.route([0.0, 0.05, 0.1, 0.3, 0.49, 0.5, 0.99], shares) == [
        "a", "a", "b", "b", "b", CHAMPION, CHAMPION,
    ]  # fmt: skip


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="one or more candidates"):
        BanditGate([])
    with pytest.raises(ValueError, match="champion"):
        BanditGate(["champion"])
    with pytest.raises(ValueError, match="policy"):
        BanditGate(["a"], policy="greedy")
    gate = BanditGate(["a"])
    with pytest.raises(ValueError, match="candidates are"):
        gate.update({"b": [1.0]}, [1.0])
    with pytest.raises(ValueError, match="finite"):
        gate.update({"a": [float("nan")]}, [1.0])
