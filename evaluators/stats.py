"""An always-valid confidence sequence for the mean of a stream of paired differences.

A fixed-sample test may be read once; the evaluators read theirs after every micro-batch and stop as
soon as the answer is clear. Reading a fixed-sample interval that often inflates the false-promotion
rate far above its nominal level. A *confidence sequence* holds at every sample size at once
(time-uniformly), so peeking after each batch, and stopping when it says so, keeps the error rate.

The boundary is the asymptotic confidence sequence with the Gaussian-mixture boundary of

    Ian Waudby-Smith, David Arbour, Ritwik Sinha, Edward H. Kennedy and Aaditya Ramdas (2021),
    "Time-uniform central limit theory and asymptotic confidence sequences", arXiv:2103.06476
    (Annals of Statistics, 2024).

It assumes only finite variance (a central limit theorem, not bounded or Gaussian data), which fits
differences of accuracies and of log losses alike. It is asymptotic: at a few dozen examples its
coverage is approximate, which is why the evaluators wait for a floor of examples before they act.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["VARIANCE_FLOOR", "SequentialDifference", "mixture_radius", "tuned_rho"]

# A run of identical differences has zero sample variance, which would give a zero-width interval
# and a verdict from a handful of examples; the floor keeps a little doubt.
VARIANCE_FLOOR = 1e-4


def tuned_rho(alpha: float, n_star: int) -> float:
    """The mixture width that makes the boundary tightest near ``n_star`` samples (eq. of WSAKR 2021)."""
    two_log = -2.0 * math.log(alpha)
    return math.sqrt((two_log + math.log(two_log + 1.0)) / n_star)


def mixture_radius(n: int, variance: float, alpha: float, rho: float) -> float:
    """Half-width of the two-sided Gaussian-mixture boundary after ``n`` samples of that variance."""
    v = n * variance * rho**2 + 1.0
    return math.sqrt(2.0 * v / (n**2 * rho**2) * math.log(math.sqrt(v) / alpha))


class SequentialDifference:
    """Running mean of paired differences with an interval that is valid at every sample size.

    Moments are merged one whole micro-batch at a time (Chan, Golub & LeVeque's parallel form of
    Welford's update): stable where a running sum of squares is not, and one numpy pass per batch.

    >>> seq = SequentialDifference(alpha=0.05, n_star=500)
    >>> seq.interval()
    (-inf, inf)
    >>> seq.update(np.tile([0.0, 1.0], 200))
    >>> lower, upper = seq.interval()
    >>> (seq.n, seq.mean, round(lower, 3), round(upper, 3))
    (400, 0.5, 0.416, 0.584)
    """

    def __init__(self, alpha: float = 0.05, n_star: int = 500) -> None:
        if not 0.0 < alpha < 1.0:
            msg = f"alpha must lie strictly between 0 and 1, got {alpha}"
            raise ValueError(msg)
        if n_star < 1:
            msg = f"n_star must be at least 1, got {n_star}"
            raise ValueError(msg)
        self.alpha = alpha
        self.n_star = n_star
        self._rho = tuned_rho(alpha, n_star)
        self.reset()

    def reset(self) -> None:
        """Forget every sample; the configuration stays."""
        self._n = 0
        self._mean = 0.0
        self._m2 = 0.0  # sum of squared deviations from the running mean

    def update(self, diffs: npt.ArrayLike) -> None:
        """Add a batch of differences. Non-finite values are refused before anything changes:
        one NaN would poison every later interval."""
        batch = np.asarray(diffs, dtype=np.float64).ravel()
        if batch.size == 0:
            return
        if not np.isfinite(batch).all():
            msg = f"differences must be finite, got {int((~np.isfinite(batch)).sum())} non-finite of {batch.size}"
            raise ValueError(msg)
        n_b = int(batch.size)
        mean_b = float(batch.mean())
        m2_b = float(np.square(batch - mean_b).sum())
        n = self._n + n_b
        delta = mean_b - self._mean
        self._mean += delta * n_b / n
        self._m2 += m2_b + delta**2 * self._n * n_b / n
        self._n = n

    @property
    def n(self) -> int:
        return self._n

    @property
    def mean(self) -> float:
        """Mean difference so far; NaN before the first sample."""
        return self._mean if self._n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 denominator); NaN below two samples."""
        return self._m2 / (self._n - 1) if self._n > 1 else math.nan

    def interval(self) -> tuple[float, float]:
        """The ``1 - alpha`` always-valid interval for the mean; ``(-inf, inf)`` below two samples."""
        if self._n < 2:
            return (-math.inf, math.inf)
        radius = mixture_radius(self._n, max(self.variance, VARIANCE_FLOOR), self.alpha, self._rho)
        return (self._mean - radius, self._mean + radius)
