"""RefreshEvaluator: a fork that is not worse than the champion it continues replaces it after
min_samples; one that is clearly worse is refused; never before min_samples."""

from __future__ import annotations

import numpy as np
import pytest

from evaluators import Paired, Phase, RefreshEvaluator

from .simulate import run_trial


@pytest.mark.parametrize("seed", range(20))
def test_an_equal_fork_is_refreshed_once_it_has_min_samples(seed: int) -> None:
    ev = RefreshEvaluator(min_samples=300, margin=0.02)
    verdict, fed = run_trial(ev, seed, 0.8, 0.8)
    assert verdict.phase is Phase.PASSED, verdict
    assert 300 <= fed <= 1500  # soon past min_samples (later where chance put it 2 points behind)
    assert verdict.evidence["diff"] >= -0.02  # type: ignore[operator]


@pytest.mark.parametrize("seed", range(20))
def test_a_clearly_worse_fork_fails(seed: int) -> None:
    verdict, fed = run_trial(RefreshEvaluator(min_samples=300, margin=0.01), seed, 0.6, 0.9)
    assert verdict.phase is Phase.FAILED, verdict
    assert verdict.evidence["upper"] < -0.01  # type: ignore[operator]
    assert fed <= 300


def test_a_fork_a_little_behind_is_not_refreshed_until_it_catches_up() -> None:
    ev = RefreshEvaluator(min_samples=100, margin=0.01)
    ev.update(Paired(candidate=np.r_[np.zeros(5), np.ones(95)], champion=np.ones(100)))  # 5 points behind
    assert ev.verdict().phase is Phase.RUNNING
    ev.update(Paired(candidate=np.ones(400), champion=np.r_[np.zeros(5), np.ones(395)]))  # level again
    assert ev.verdict().phase is Phase.PASSED


def test_no_verdict_before_min_samples_and_a_negative_margin_is_refused() -> None:
    ev = RefreshEvaluator(min_samples=50)
    ev.update(Paired(candidate=np.ones(49), champion=np.ones(49)))
    assert ev.verdict().phase is Phase.PENDING
    with pytest.raises(ValueError, match="margin"):
        RefreshEvaluator(margin=-0.1)


@pytest.mark.parametrize("seed", range(10))
def test_a_clearly_better_fork_does_not_wait_for_min_samples(seed: int) -> None:
    """Against an untrained champion, or just after an abrupt change, the fork is refreshed early."""
    verdict, fed = run_trial(RefreshEvaluator(min_samples=1000), seed, 0.9, 0.5)
    assert verdict.phase is Phase.PASSED and "significantly better" in verdict.reason, verdict
    assert fed < 1000


@pytest.mark.parametrize("seed", range(5))
def test_without_early_passes_a_clearly_better_fork_waits_for_min_samples(seed: int) -> None:
    """Live refresh serves the fork's state already: its promotions come every ``min_samples``."""
    verdict, fed = run_trial(RefreshEvaluator(min_samples=1000, early=False), seed, 0.9, 0.5)
    assert verdict.phase is Phase.PASSED and "not worse" in verdict.reason, verdict
    assert fed >= 1000
