"""Shadow evaluation: the candidate predicts on all labelled traffic but is never served.

It costs nothing to be wrong in the shadow, so the trial can wait for a clear answer: the candidate
passes when the always-valid interval for mean(candidate - champion) lies above the required
improvement, fails as soon as it lies below zero, and gives up (inconclusive) when the required
improvement is out of reach or the sample budget is spent.
"""

from __future__ import annotations

from evaluators._trial import SequentialEvaluator, check_alpha, check_at_least, fail_floor, fmt
from evaluators.base import Phase, Verdict

__all__ = ["ShadowEvaluator"]


class ShadowEvaluator(SequentialEvaluator):
    """Sequential paired test of a shadow candidate against the champion.

    A verdict that concludes (passed, failed, inconclusive) is kept: later updates are ignored until
    ``reset``, so what the promoter read is what the trial decided.

    >>> import numpy as np
    >>> from evaluators import Paired
    >>> ev = ShadowEvaluator(min_samples=200)
    >>> ev.verdict().phase
    <Phase.PENDING: 'pending'>
    >>> ev.update(Paired(candidate=np.ones(120), champion=np.ones(120)))
    >>> ev.verdict().reason
    '120 of 200 labelled examples so far; the candidate is judged from 200'
    """

    def __init__(
        self,
        alpha: float = 0.05,
        min_samples: int = 200,
        min_improvement: float = 0.0,
        max_samples: int = 5000,
        n_star: int = 500,
    ) -> None:
        check_alpha(alpha)
        check_at_least("min_samples", min_samples, 1)
        check_at_least("min_improvement", min_improvement, 0.0)
        check_at_least("max_samples", max_samples, min_samples)
        check_at_least("n_star", n_star, 1)
        self.alpha = alpha
        self.min_samples = min_samples
        self.min_improvement = min_improvement
        self.max_samples = max_samples
        self.n_star = n_star
        super().__init__(alpha, n_star)

    def _open(self) -> Verdict:
        t = self._trial
        if t.n < self.min_samples:
            reason = (
                f"{t.n} of {self.min_samples} labelled examples so far; the candidate is judged from {self.min_samples}"
            )
            return self._verdict(Phase.PENDING, reason)
        return self._verdict(Phase.RUNNING, f"measuring: {t.summary()}")

    def _conclusion(self) -> Verdict | None:
        t = self._trial
        if t.n >= fail_floor(self.min_samples) and t.upper < 0:
            return self._verdict(Phase.FAILED, f"the candidate is significantly worse: {t.summary()}")
        if t.n < self.min_samples:
            return None
        need = fmt(self.min_improvement)
        if t.lower > self.min_improvement:
            return self._verdict(Phase.PASSED, f"{t.summary()}, above the required improvement of {need}")
        if t.upper < self.min_improvement:
            reason = f"the candidate cannot reach the required improvement of {need}: {t.summary()}"
            return self._verdict(Phase.INCONCLUSIVE, reason)
        if t.n >= self.max_samples:
            reason = f"no conclusion within {self.max_samples} examples: {t.summary()}"
            return self._verdict(Phase.INCONCLUSIVE, reason)
        return None

    def _verdict(self, phase: Phase, reason: str) -> Verdict:
        evidence = self._trial.evidence()
        evidence |= {"min_samples": self.min_samples, "min_improvement": self.min_improvement}
        evidence["max_samples"] = self.max_samples
        return Verdict(phase, reason, evidence)
