"""ShadowEvaluator: passes a clearly better candidate, fails a worse one at once, rarely passes an equal one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evaluators import Paired, Phase, ShadowEvaluator

from .simulate import run_trial


def _same(n: int, value: float = 1.0) -> Paired:
    return Paired(np.full(n, value), np.full(n, value))


def _diff(n: int, candidate: float, champion: float) -> Paired:
    return Paired(np.full(n, candidate), np.full(n, champion))


@pytest.mark.parametrize("seed", range(20))
def test_a_clearly_better_candidate_passes_within_a_few_hundred_examples(seed: int) -> None:
    verdict, fed = run_trial(ShadowEvaluator(), seed, 0.9, 0.7)
    assert verdict.phase is Phase.PASSED, verdict
    assert fed <= 400
    assert verdict.evidence["lower"] > 0  # type: ignore[operator]


@pytest.mark.parametrize("seed", range(20))
def test_a_clearly_worse_candidate_fails(seed: int) -> None:
    verdict, fed = run_trial(ShadowEvaluator(), seed, 0.7, 0.9)
    assert verdict.phase is Phase.FAILED, verdict
    assert fed <= 400
    assert verdict.evidence["upper"] < 0  # type: ignore[operator]


def test_equal_candidates_are_rarely_promoted() -> None:
    """The bounded false-promotion rate: read after every batch up to max_samples, an equal candidate
    passes in at most about alpha of the trials."""
    alpha, trials = 0.05, 200
    phases = [run_trial(ShadowEvaluator(alpha=alpha), seed, 0.8, 0.8)[0].phase for seed in range(trials)]
    assert phases.count(Phase.PASSED) <= 2 * alpha * trials
    assert phases.count(Phase.INCONCLUSIVE) >= (1 - 2 * alpha) * trials  # most run to the budget


def test_a_significant_regression_fails_before_min_samples_but_not_before_the_floor() -> None:
    ev = ShadowEvaluator(min_samples=200)
    ev.update(_diff(29, 0.0, 1.0))
    assert ev.verdict().phase is Phase.PENDING
    ev.update(_diff(1, 0.0, 1.0))
    verdict = ev.verdict()
    assert verdict.phase is Phase.FAILED
    assert verdict.reason.startswith("the candidate is significantly worse: ")
    assert verdict.evidence["n"] == 30


def test_a_small_min_samples_lowers_the_failure_floor() -> None:
    # n_star=20 tunes the boundary for small samples, so only the floor holds the verdict back.
    ev = ShadowEvaluator(min_samples=10, max_samples=100, n_star=20)
    ev.update(_diff(9, 0.0, 1.0))
    assert ev.verdict().phase is Phase.PENDING
    ev.update(_diff(1, 0.0, 1.0))
    assert ev.verdict().phase is Phase.FAILED


def test_a_clear_improvement_waits_for_min_samples() -> None:
    ev = ShadowEvaluator(min_samples=200)
    ev.update(_diff(199, 1.0, 0.0))
    verdict = ev.verdict()
    assert verdict.phase is Phase.PENDING
    assert verdict.reason == "199 of 200 labelled examples so far; the candidate is judged from 200"
    ev.update(_diff(1, 1.0, 0.0))
    assert ev.verdict().phase is Phase.PASSED


def test_passing_needs_the_lower_bound_above_the_required_improvement() -> None:
    # Better by exactly 0.1 on every example: the interval sits around 0.1, never above 0.2.
    ev = ShadowEvaluator(min_improvement=0.2)
    ev.update(_diff(2000, 0.6, 0.5))
    verdict = ev.verdict()
    assert verdict.phase is Phase.INCONCLUSIVE
    assert verdict.reason.startswith("the candidate cannot reach the required improvement of 0.200: ")
    ev_low = ShadowEvaluator(min_improvement=0.05)
    ev_low.update(_diff(2000, 0.6, 0.5))
    assert ev_low.verdict().phase is Phase.PASSED


def test_futility_ends_an_equal_trial_before_the_budget() -> None:
    ev = ShadowEvaluator(min_improvement=0.05, max_samples=100_000)
    verdict, fed = run_trial(ev, 0, 0.8, 0.8)
    assert verdict.phase is Phase.INCONCLUSIVE
    assert "cannot reach" in verdict.reason
    assert fed < 100_000


def test_no_conclusion_within_the_budget_is_inconclusive() -> None:
    ev = ShadowEvaluator(min_samples=100, max_samples=300)
    ev.update(_same(299))
    assert ev.verdict().phase is Phase.RUNNING
    assert ev.verdict().reason.startswith("measuring: ")
    ev.update(_same(1))
    verdict = ev.verdict()
    assert verdict.phase is Phase.INCONCLUSIVE
    assert verdict.reason.startswith("no conclusion within 300 examples: ")


def test_reason_states_the_numbers_in_the_evidence() -> None:
    verdict, _ = run_trial(ShadowEvaluator(), 3, 0.9, 0.7)
    e: dict[str, Any] = dict(verdict.evidence)
    assert e["diff"] == pytest.approx(e["candidate_mean"] - e["champion_mean"])
    assert verdict.reason == (
        f"the candidate's mean score is higher by {e['diff']:.3f} than the champion's "
        f"(95% always-valid interval {e['lower']:.3f} to {e['upper']:.3f}) over {e['n']} paired examples, "
        "above the required improvement of 0.000"
    )
    assert e["alpha"] == 0.05


def test_a_concluded_verdict_is_kept() -> None:
    ev = ShadowEvaluator()
    run_trial(ev, 0, 0.9, 0.7)
    passed = ev.verdict()
    for _ in range(20):
        ev.update(_diff(500, 0.0, 1.0))
    assert ev.verdict() == passed


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"min_samples": 0}, "min_samples"),
        ({"min_improvement": -0.1}, "min_improvement"),
        ({"min_samples": 300, "max_samples": 200}, "max_samples"),
        ({"n_star": 0}, "n_star"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ShadowEvaluator(**kwargs)
