"""Refresh: the champion's own continuation replaces it as soon as it is not worse.

A shadow trial promotes a fork only when it is *significantly better* than the frozen champion. On
a stream that drifts slowly, that takes thousands of examples each time, and between two promotions
serving does not get what the fork learned: behind Headwater a learner served 2 to 3 points below
the same learner alone (`bench/results/parity.md`). A fork is the champion's model learning on:
what it needs to replace the champion is evidence that learning has not made it worse, not that it
made it better. A refresh trial passes once it has ``min_samples`` paired examples on which the
fork's mean score is no more than ``margin`` below the champion's, or earlier if it is already
significantly better (an untrained first champion, the first batches after an abrupt change), and
fails as soon as the fork is significantly worse than that (the always-valid interval lies below
``-margin``). The guards of every promotion still apply: the golden set, the probation against the
last good version with its rollback, and the change detector, which starts every trial over when
the data changes (a label-flip burst included).

>>> import numpy as np
>>> from evaluators import Paired
>>> ev = RefreshEvaluator(min_samples=100, margin=0.01)
>>> ev.update(Paired(candidate=np.ones(100), champion=np.ones(100)))
>>> ev.verdict().phase
<Phase.PASSED: 'passed'>
"""

from __future__ import annotations

from evaluators._trial import SequentialEvaluator, check_alpha, check_at_least, fail_floor, fmt
from evaluators.base import Phase, Verdict

__all__ = ["RefreshEvaluator"]


class RefreshEvaluator(SequentialEvaluator):
    """Non-inferiority of a fork against the champion it continues (see the module's doc)."""

    early: bool = True  # a snapshot pickled before the setting existed resumes with the old behaviour

    def __init__(
        self, alpha: float = 0.05, min_samples: int = 300, margin: float = 0.0, n_star: int = 500, *, early: bool = True
    ) -> None:
        """``early``: pass as soon as the fork is significantly better, before ``min_samples``. With
        live refresh the fork's own state serves already, and an early promotion would only add a
        frozen copy and a checkpoint on the serving thread (a quarter of a second for MOA's forest,
        every few hundred examples on a drifting stream): the train step turns it off there."""
        check_alpha(alpha)
        check_at_least("min_samples", min_samples, 1)
        check_at_least("margin", margin, 0.0)
        check_at_least("n_star", n_star, 1)
        self.min_samples = min_samples
        self.margin = margin
        self.early = early
        super().__init__(alpha, n_star)

    def may_serve(self, *, proven: bool = False) -> bool:
        """Live refresh: whether the fork's latest state may serve now. Not once the trial failed;
        otherwise unless the fork's mean score is more than ``margin`` below the champion's by at
        least one standard error (from ``fail_floor`` paired examples on). The fork is the champion
        it continues plus what it learned since: serving it needs no evidence for it, only none
        against it. (A bare point estimate below ``-margin`` flipped with the noise and kept the
        champion serving 60 % of the time on the parity bench; the trial's always-valid interval,
        which fails the fork, takes hundreds of examples to show a regression of a few points.)
        ``proven``: after a refusal there was evidence against the fork, and the new one serves
        only once its own trial has ``fail_floor`` examples that do not hold it back.

        >>> import numpy as np
        >>> from evaluators import Paired
        >>> ev = RefreshEvaluator(min_samples=100, margin=0.01)
        >>> ev.may_serve()  # nothing against it yet
        True
        >>> ev.update(Paired(candidate=np.r_[np.ones(95), np.zeros(5)], champion=np.r_[np.zeros(3), np.ones(97)]))
        >>> ev.may_serve()  # 0.02 below the champion, but within one standard error (0.028) of -margin
        True
        >>> ev.update(Paired(candidate=np.zeros(20), champion=np.ones(20)))
        >>> ev.may_serve()  # 0.18 below it on the 120 examples so far
        False
        >>> RefreshEvaluator(min_samples=100).may_serve(proven=True)  # after a refusal: not before 30 examples
        False
        """
        t = self._trial
        if self._final is not None and self._final.phase is Phase.FAILED:
            return False
        if t.n < fail_floor(self.min_samples):
            return not proven
        return t.diff + t.standard_error >= -self.margin

    def _open(self) -> Verdict:
        t = self._trial
        if t.n < self.min_samples:
            reason = (
                f"{t.n} of {self.min_samples} labelled examples so far; the fork is refreshed from {self.min_samples}"
            )
            return self._verdict(Phase.PENDING, reason)
        return self._verdict(Phase.RUNNING, f"measuring: {t.summary()}")

    def _conclusion(self) -> Verdict | None:
        t = self._trial
        margin = fmt(self.margin)
        if t.n >= fail_floor(self.min_samples) and t.upper < -self.margin:
            return self._verdict(Phase.FAILED, f"the fork is significantly worse, beyond {margin}: {t.summary()}")
        if t.n >= self.min_samples and t.diff >= -self.margin:
            return self._verdict(Phase.PASSED, f"not worse than the champion by more than {margin}: {t.summary()}")
        if self.early and t.n >= fail_floor(self.min_samples) and t.lower > 0:  # no need to wait: clearly better
            return self._verdict(Phase.PASSED, f"significantly better than the champion: {t.summary()}")
        return None

    def _verdict(self, phase: Phase, reason: str) -> Verdict:
        evidence = self._trial.evidence() | {"min_samples": self.min_samples, "margin": self.margin}
        return Verdict(phase, reason, evidence)
