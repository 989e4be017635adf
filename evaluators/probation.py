"""Probation: after a promotion, watch the new champion against the predecessor kept on standby.

A candidate passed its trial on the traffic of its trial; probation checks that it holds up on the
traffic that follows. The question is narrower than a trial's: not "is it better" but "is it clearly
worse than the model it replaced". The trial fails (the promoter rolls back) when the always-valid
interval for mean(new - old) lies entirely below ``-margin``; it passes (the predecessor may be
retired) once ``samples`` examples are in without failing. Being better early is no reason to end
it sooner: a change in the data that favours the new champion for a while (a burst, a season)
may pass, and its predecessor must still be there when it does.
"""

from __future__ import annotations

from evaluators._trial import SequentialEvaluator, check_alpha, check_at_least, fail_floor, fmt
from evaluators.base import Phase, Verdict

__all__ = ["ProbationEvaluator"]


class ProbationEvaluator(SequentialEvaluator):
    """``Paired.candidate`` is the new champion, ``Paired.champion`` its predecessor.

    A concluded verdict is kept until ``reset``; later updates are ignored.

    >>> import numpy as np
    >>> from evaluators import Paired
    >>> ev = ProbationEvaluator(min_samples=100, samples=200)
    >>> ev.update(Paired(candidate=np.zeros(100), champion=np.ones(100)))
    >>> ev.verdict().phase
    <Phase.FAILED: 'failed'>
    """

    def __init__(
        self,
        margin: float = 0.02,
        alpha: float = 0.05,
        min_samples: int = 200,
        samples: int = 2000,
        n_star: int = 500,
    ) -> None:
        check_at_least("margin", margin, 0.0)
        check_alpha(alpha)
        check_at_least("min_samples", min_samples, 1)
        check_at_least("samples", samples, min_samples)
        check_at_least("n_star", n_star, 1)
        self.margin = margin
        self.alpha = alpha
        self.min_samples = min_samples
        self.samples = samples
        self.n_star = n_star
        super().__init__(alpha, n_star)

    def _open(self) -> Verdict:
        t = self._trial
        if t.n < self.min_samples:
            reason = f"{t.n} of {self.min_samples} examples since the promotion; no verdict before {self.min_samples}"
            return self._verdict(Phase.PENDING, reason)
        return self._verdict(Phase.RUNNING, f"{t.n} of {self.samples} probation examples; {self._summary()}")

    def _conclusion(self) -> Verdict | None:
        t = self._trial
        if t.n >= fail_floor(self.min_samples) and t.upper < -self.margin:
            reason = (
                f"the new champion is worse than its predecessor by more than {fmt(self.margin)}: {self._summary()}"
            )
            return self._verdict(Phase.FAILED, reason)
        if t.n >= self.samples:
            reason = f"the new champion held up over {t.n} examples, not worse by more than {fmt(self.margin)}: "
            return self._verdict(Phase.PASSED, reason + self._summary())
        return None

    def _summary(self) -> str:
        return self._trial.summary(subject="the new champion", other="its predecessor")

    def _verdict(self, phase: Phase, reason: str) -> Verdict:
        evidence = self._trial.evidence()
        evidence |= {"margin": self.margin, "min_samples": self.min_samples, "samples": self.samples}
        return Verdict(phase, reason, evidence)
