"""Canary evaluation: the candidate serves a share of traffic, raised in steps while it holds up.

Unlike the shadow, a canary's mistakes reach users, so a significant regression fails the trial at
once, at any step. The share rises only after a step has seen its minimum of examples; the test
itself runs over every canary example of the trial (the interval is always-valid, so it may be read
after every batch). The caller passes only the examples the canary served, each paired with the
champion's counterfactual prediction on it.

Routing is sticky: an event key goes to the canary iff ``canary_bucket(key, seed) < share``, so
raising the share keeps every key that was already in the canary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import pairwise

from evaluators._trial import SequentialEvaluator, check_alpha, check_at_least, fail_floor, fmt
from evaluators.base import Paired, Phase, Verdict

__all__ = ["CanaryEvaluator", "canary_bucket"]


def canary_bucket(key: str, seed: int) -> float:
    """A stable position of ``key`` in [0, 1), the same in every process and run.

    Python's ``hash()`` is salted per process, so it would reshuffle the canary on every restart;
    BLAKE2b of the seed and the key is not. The top 53 bits make an exact float below 1.

    >>> canary_bucket("user-42", seed=7) == canary_bucket("user-42", seed=7)
    True
    >>> 0.0 <= canary_bucket("user-42", seed=7) < 1.0
    True
    """
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / 2.0**53


class CanaryEvaluator(SequentialEvaluator):
    """Stepped canary with an always-valid paired test over all its examples.

    A concluded verdict is kept until ``reset``; later updates are ignored.

    >>> import numpy as np
    >>> ev = CanaryEvaluator(steps=(0.05, 0.25), min_samples_per_step=100)
    >>> ev.update(Paired(candidate=np.ones(100), champion=np.ones(100)))
    >>> (ev.step, ev.share, ev.verdict().phase)
    (1, 0.25, <Phase.RUNNING: 'running'>)
    """

    def __init__(
        self,
        steps: Sequence[float] = (0.05, 0.25, 0.5),
        min_samples_per_step: int = 200,
        alpha: float = 0.05,
        min_improvement: float = 0.0,
        max_samples: int = 20000,
        n_star: int = 500,
    ) -> None:
        steps = tuple(float(s) for s in steps)
        if not steps or any(not 0.0 < s <= 1.0 for s in steps):
            msg = f"steps must be traffic shares in (0, 1], got {steps}"
            raise ValueError(msg)
        if any(b <= a for a, b in pairwise(steps)):
            msg = f"steps must be strictly increasing, got {steps}"
            raise ValueError(msg)
        check_at_least("min_samples_per_step", min_samples_per_step, 1)
        check_alpha(alpha)
        check_at_least("min_improvement", min_improvement, 0.0)
        check_at_least("max_samples", max_samples, min_samples_per_step * len(steps))
        check_at_least("n_star", n_star, 1)
        self.steps = steps
        self.min_samples_per_step = min_samples_per_step
        self.alpha = alpha
        self.min_improvement = min_improvement
        self.max_samples = max_samples
        self.n_star = n_star
        super().__init__(alpha, n_star)
        self._step = 0
        self._step_samples = 0  # canary examples seen at the current step

    @property
    def step(self) -> int:
        """Index into ``steps`` of the share now served."""
        return self._step

    @property
    def share(self) -> float:
        """Share of traffic the canary should serve now."""
        return self.steps[self._step]

    def reset(self) -> None:
        super().reset()
        self._step = 0
        self._step_samples = 0

    def update(self, outcomes: Paired) -> None:
        if self._final is not None:
            return
        super().update(outcomes)
        if self._final is None and self._step_done() and self._step + 1 < len(self.steps):
            # Examples past the step's minimum were served at the old share: they do not count
            # towards the next step.
            self._step += 1
            self._step_samples = 0

    def _open(self) -> Verdict:
        if self._step == 0 and not self._step_done():
            reason = (
                f"{self._step_samples} of {self.min_samples_per_step} canary examples "
                f"at the first step ({self._pct(self.share)} of traffic)"
            )
            return self._verdict(Phase.PENDING, reason)
        where = (
            f"step {self._step + 1} of {len(self.steps)} ({self._pct(self.share)} of traffic), "
            f"{self._step_samples} of {self.min_samples_per_step} examples"
        )
        return self._verdict(Phase.RUNNING, f"{where}; {self._trial.summary()}")

    def _observed(self, outcomes: Paired) -> None:
        self._step_samples += len(outcomes)

    def _step_done(self) -> bool:
        return self._step_samples >= self.min_samples_per_step

    def _conclusion(self) -> Verdict | None:
        t = self._trial
        if t.n >= fail_floor(self.min_samples_per_step) and t.upper < 0:
            reason = f"the canary is significantly worse at {self._pct(self.share)} of traffic: {t.summary()}"
            return self._verdict(Phase.FAILED, reason)
        if self._step == 0 and not self._step_done():
            return None
        need = fmt(self.min_improvement)
        last = self._step + 1 == len(self.steps)
        if last and self._step_done() and t.lower > self.min_improvement:
            reason = f"{t.summary()}, above the required improvement of {need}, at {self._pct(self.share)} of traffic"
            return self._verdict(Phase.PASSED, reason)
        if t.upper < self.min_improvement:
            reason = f"the canary cannot reach the required improvement of {need}: {t.summary()}"
            return self._verdict(Phase.INCONCLUSIVE, reason)
        if t.n >= self.max_samples:
            return self._verdict(Phase.INCONCLUSIVE, f"no conclusion within {self.max_samples} examples: {t.summary()}")
        return None

    def _verdict(self, phase: Phase, reason: str) -> Verdict:
        evidence = self._trial.evidence()
        evidence |= {"step": self._step, "share": self.share, "step_samples": self._step_samples}
        evidence |= {"min_samples_per_step": self.min_samples_per_step, "min_improvement": self.min_improvement}
        return Verdict(phase, reason, evidence)

    @staticmethod
    def _pct(share: float) -> str:
        return f"{100 * share:g}%"
