"""SequentialDifference: stable batch moments and an always-valid interval that covers the mean."""

from __future__ import annotations

import math
import pickle
from itertools import pairwise

import numpy as np
import pytest

from evaluators import SequentialDifference
from evaluators.stats import VARIANCE_FLOOR, mixture_radius, tuned_rho


def _paper_radius(n: int, s2: float, alpha: float, n_star: int) -> float:
    """The boundary written out again from the paper, independently of the module."""
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / n_star
    return math.sqrt(2 * (n * s2 * rho2 + 1) / (n**2 * rho2) * math.log(math.sqrt(n * s2 * rho2 + 1) / alpha))


@pytest.mark.parametrize("cuts", [[], [1], [3, 4, 500], list(range(1, 999, 37))])
def test_batch_moments_match_numpy_however_the_stream_is_cut(cuts: list[int]) -> None:
    # A large offset breaks a naive sum of squares; the merged moments must not care.
    x = 1e9 + np.random.default_rng(0).normal(0.0, 1.0, 1000)
    seq = SequentialDifference()
    for part in np.split(x, cuts):
        seq.update(part)
    assert seq.n == 1000
    assert seq.mean == pytest.approx(x.mean(), rel=1e-15)
    assert seq.variance == pytest.approx(x.var(ddof=1), rel=1e-6)


def test_interval_is_the_gaussian_mixture_boundary_of_the_paper() -> None:
    x = np.random.default_rng(1).normal(0.3, 2.0, 777)
    seq = SequentialDifference(alpha=0.1, n_star=300)
    seq.update(x)
    radius = _paper_radius(777, x.var(ddof=1), 0.1, 300)
    lower, upper = seq.interval()
    assert lower == pytest.approx(x.mean() - radius, rel=1e-12)
    assert upper == pytest.approx(x.mean() + radius, rel=1e-12)


def test_tuned_rho_makes_the_boundary_tightest_near_n_star() -> None:
    rho = tuned_rho(0.05, 500)
    at_n_star = mixture_radius(500, 1.0, 0.05, rho)
    for other in np.linspace(0.3, 3.0, 28) * rho:
        assert at_n_star <= mixture_radius(500, 1.0, 0.05, float(other)) + 1e-4


def test_no_interval_below_two_samples() -> None:
    seq = SequentialDifference()
    assert seq.interval() == (-math.inf, math.inf)
    assert math.isnan(seq.mean)
    seq.update(np.array([0.5]))
    assert seq.interval() == (-math.inf, math.inf)
    assert seq.mean == 0.5
    assert math.isnan(seq.variance)
    seq.update(np.array([0.5]))
    assert all(math.isfinite(b) for b in seq.interval())


def test_identical_differences_keep_a_floor_of_doubt() -> None:
    seq = SequentialDifference(alpha=0.05, n_star=500)
    seq.update(np.full(200, 0.25))
    lower, upper = seq.interval()
    radius = _paper_radius(200, VARIANCE_FLOOR, 0.05, 500)
    assert lower == pytest.approx(0.25 - radius)
    assert upper == pytest.approx(0.25 + radius)
    assert upper - lower > 0.1


def test_interval_narrows_as_evidence_grows() -> None:
    rng = np.random.default_rng(2)
    seq = SequentialDifference()
    widths = []
    for _ in range(20):
        seq.update(rng.choice([-1.0, 0.0, 1.0], 100))
        lower, upper = seq.interval()
        widths.append(upper - lower)
    assert all(b < a for a, b in pairwise(widths))


def test_covers_the_true_mean_at_all_times_in_most_runs() -> None:
    """Time-uniform coverage: read after every batch, the interval misses the true mean at *any*
    time in at most alpha of the runs (the asymptotic sequence keeps about 2-4% here)."""
    alpha, runs, true_mean = 0.05, 200, 0.9 - 0.7
    misses = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        seq = SequentialDifference(alpha=alpha)
        for _ in range(100):
            diffs = (rng.random(50) < 0.9).astype(float) - (rng.random(50) < 0.7).astype(float)
            seq.update(diffs)
            lower, upper = seq.interval()
            if not lower <= true_mean <= upper:
                misses += 1
                break
    assert misses <= alpha * runs


def test_non_finite_differences_are_refused_and_change_nothing() -> None:
    seq = SequentialDifference()
    seq.update(np.array([0.0, 1.0, 1.0]))
    before = (seq.n, seq.mean, seq.interval())
    with pytest.raises(ValueError, match="finite"):
        seq.update(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="finite"):
        seq.update(np.array([np.inf]))
    assert (seq.n, seq.mean, seq.interval()) == before


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"alpha": 0.0}, "alpha"), ({"alpha": 1.0}, "alpha"), ({"n_star": 0}, "n_star")]
)
def test_bad_configuration_is_refused(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        SequentialDifference(**kwargs)  # type: ignore[arg-type]


def test_reset_and_pickle() -> None:
    seq = SequentialDifference(alpha=0.1, n_star=100)
    seq.update(np.array([1.0, 0.0, 1.0]))
    restored = pickle.loads(pickle.dumps(seq))
    assert (restored.n, restored.mean, restored.interval()) == (seq.n, seq.mean, seq.interval())
    seq.reset()
    assert (seq.n, seq.interval(), seq.alpha, seq.n_star) == (0, (-math.inf, math.inf), 0.1, 100)
