"""ProbationEvaluator: a new champion clearly worse than its predecessor is rolled back; one that
holds up for ``samples`` examples lets the predecessor retire."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evaluators import Paired, Phase, ProbationEvaluator

from .simulate import run_trial


def _scores(n: int, new: float, old: float) -> Paired:
    return Paired(np.full(n, new), np.full(n, old))


@pytest.mark.parametrize("seed", range(20))
def test_a_degraded_new_champion_fails(seed: int) -> None:
    verdict, fed = run_trial(ProbationEvaluator(margin=0.02), seed, 0.65, 0.85)
    assert verdict.phase is Phase.FAILED, verdict
    assert fed < 2000
    assert verdict.evidence["upper"] < -0.02  # type: ignore[operator]
    assert verdict.reason.startswith("the new champion is worse than its predecessor by more than 0.020: ")
    assert "the new champion's mean score is lower by" in verdict.reason


@pytest.mark.parametrize("seed", range(20))
def test_an_equal_new_champion_passes_after_samples(seed: int) -> None:
    ev = ProbationEvaluator(samples=2000)
    verdict, fed = run_trial(ev, seed, 0.8, 0.8)
    assert verdict.phase is Phase.PASSED, verdict
    assert fed == 2000 and verdict.evidence["n"] == 2000
    assert verdict.reason.startswith("the new champion held up over 2000 examples, not worse by more than 0.020: ")


def test_running_until_samples() -> None:
    ev = ProbationEvaluator(min_samples=200, samples=2000)
    ev.update(_scores(199, 1.0, 1.0))
    assert ev.verdict().phase is Phase.PENDING
    assert ev.verdict().reason == "199 of 200 examples since the promotion; no verdict before 200"
    ev.update(_scores(1800, 1.0, 1.0))
    assert ev.verdict().phase is Phase.RUNNING
    assert ev.verdict().reason.startswith("1999 of 2000 probation examples; ")
    ev.update(_scores(1, 1.0, 1.0))
    assert ev.verdict().phase is Phase.PASSED


def test_worse_by_less_than_the_margin_is_kept() -> None:
    # Worse by exactly 0.01 on every example: well inside the 0.02 margin, the interval ends up tight.
    ev = ProbationEvaluator(margin=0.02, samples=2000)
    ev.update(_scores(2000, 0.79, 0.8))
    assert ev.verdict().phase is Phase.PASSED
    assert ev.verdict().evidence["upper"] < 0  # type: ignore[operator]  # significantly worse, but not by the margin


def test_worse_by_more_than_the_margin_is_rolled_back() -> None:
    ev = ProbationEvaluator(margin=0.02, samples=2000)
    ev.update(_scores(1999, 0.75, 0.8))
    assert ev.verdict().phase is Phase.FAILED


def test_a_significant_failure_fails_before_min_samples_but_not_before_the_floor() -> None:
    ev = ProbationEvaluator(min_samples=200)
    ev.update(_scores(29, 0.0, 1.0))
    assert ev.verdict().phase is Phase.PENDING
    ev.update(_scores(1, 0.0, 1.0))
    assert ev.verdict().phase is Phase.FAILED
    assert ev.verdict().evidence["n"] == 30


def test_a_concluded_probation_stays_concluded() -> None:
    ev = ProbationEvaluator(min_samples=100, samples=200)
    ev.update(_scores(200, 1.0, 1.0))
    passed = ev.verdict()
    ev.update(_scores(1000, 0.0, 1.0))
    assert ev.verdict() == passed


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"margin": -0.01}, "margin"),
        ({"alpha": 0.0}, "alpha"),
        ({"min_samples": 0}, "min_samples"),
        ({"min_samples": 300, "samples": 200}, "samples"),
        ({"n_star": 0}, "n_star"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ProbationEvaluator(**kwargs)
