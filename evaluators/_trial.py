"""What the sequential evaluators (shadow, canary, probation) share: a running always-valid test of
mean(candidate - champion), the numbers they report, and the sentences they say them in."""

from __future__ import annotations

import math

import numpy as np

from evaluators.base import Paired, Verdict
from evaluators.stats import SequentialDifference

__all__ = ["FAIL_FLOOR", "PairedTrial", "SequentialEvaluator", "check_alpha", "check_at_least", "fail_floor", "fmt"]

# The interval is asymptotic: below a few dozen examples its coverage is rough, so nobody acts on it
# before this many, not even to fail. A big regression still fails within the first batches.
FAIL_FLOOR = 30


def fail_floor(min_samples: int) -> int:
    """Examples needed before a significant regression may fail a trial."""
    return min(min_samples, FAIL_FLOOR)


def check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        msg = f"alpha must lie strictly between 0 and 1, got {alpha}"
        raise ValueError(msg)


def check_at_least(name: str, value: float, low: float) -> None:
    if value < low:
        msg = f"{name} must be at least {low}, got {value}"
        raise ValueError(msg)


def fmt(x: float) -> str:
    """A score or a difference as a person reads it: three decimals."""
    return f"{x:.3f}"


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


class PairedTrial:
    """Mean candidate score, mean champion score, and an always-valid interval for their difference."""

    def __init__(self, alpha: float, n_star: int) -> None:
        self._test = SequentialDifference(alpha, n_star)
        self._candidate_sum = 0.0
        self._champion_sum = 0.0

    def reset(self) -> None:
        self._test.reset()
        self._candidate_sum = 0.0
        self._champion_sum = 0.0

    def update(self, outcomes: Paired) -> None:
        diffs = np.asarray(outcomes.candidate, dtype=np.float64) - np.asarray(outcomes.champion, dtype=np.float64)
        self._test.update(diffs)  # refuses non-finite scores before anything here changes
        self._candidate_sum += float(np.sum(outcomes.candidate))
        self._champion_sum += float(np.sum(outcomes.champion))

    @property
    def n(self) -> int:
        return self._test.n

    @property
    def alpha(self) -> float:
        return self._test.alpha

    @property
    def diff(self) -> float:
        return self._test.mean

    @property
    def standard_error(self) -> float:
        """Of the mean difference (a fixed-sample figure, not always-valid); inf below two samples."""
        n, variance = self._test.n, self._test.variance
        return math.sqrt(max(variance, 0.0) / n) if n > 1 else math.inf

    @property
    def lower(self) -> float:
        return self._test.interval()[0]

    @property
    def upper(self) -> float:
        return self._test.interval()[1]

    def evidence(self) -> dict[str, float | int | str | bool | None]:
        """The numbers behind a verdict; ``None`` where there is nothing to report yet (strict JSON)."""
        n = self.n
        lower, upper = self._test.interval()
        return {
            "n": n,
            "candidate_mean": self._candidate_sum / n if n else None,
            "champion_mean": self._champion_sum / n if n else None,
            "diff": self.diff if n else None,
            "lower": _finite_or_none(lower),
            "upper": _finite_or_none(upper),
            "alpha": self.alpha,
        }

    def summary(self, subject: str = "the candidate", other: str = "the champion") -> str:
        """e.g. "the candidate's mean score is higher by 0.042 than the champion's (95% always-valid
        interval 0.021 to 0.063) over 812 paired examples"."""
        n = self.n
        if n < 2:
            return f"{n} paired example{'s' if n != 1 else ''} so far, too few for an interval"
        diff = self.diff
        direction = "higher" if diff >= 0 else "lower"
        lower, upper = self._test.interval()
        level = f"{100 * (1 - self.alpha):g}%"
        return (
            f"{subject}'s mean score is {direction} by {fmt(abs(diff))} than {other}'s "
            f"({level} always-valid interval {fmt(lower)} to {fmt(upper)}) over {n} paired examples"
        )


class SequentialEvaluator:
    """The life of a sequential trial (shadow, canary, probation): paired evidence goes into one
    `PairedTrial`; the first conclusion (`_conclusion`) is kept until ``reset`` and later updates are
    ignored, so the promoter acts on what the trial decided; before that, `_open` says where it is."""

    def __init__(self, alpha: float, n_star: int) -> None:
        self._trial = PairedTrial(alpha, n_star)
        self._final: Verdict | None = None

    def reset(self) -> None:
        self._trial.reset()
        self._final = None

    def update(self, outcomes: Paired) -> None:
        if self._final is not None:
            return
        self._trial.update(outcomes)  # refuses non-finite scores before anything changes
        self._observed(outcomes)
        self._final = self._conclusion()

    def verdict(self) -> Verdict:
        return self._final if self._final is not None else self._open()

    def _observed(self, outcomes: Paired) -> None:
        """What a subclass counts besides the trial (a canary: its step's examples)."""

    def _conclusion(self) -> Verdict | None:
        raise NotImplementedError

    def _open(self) -> Verdict:
        raise NotImplementedError
