"""A bandit gate: several candidates share the canary traffic, each in proportion to how likely it
is to be the best, and the one that is clearly best replaces the champion.

The arms are the champion and the candidates. Every arm scores every labelled example before it
learns it (prequential: candidates learn in their lanes, the champion only scores), so the
evidence is paired. Per arm, a Beta posterior over its accuracy on the recent labels: right and
wrong counts faded by ``discount`` per example (0.999: a half-life of about 700 labels), so an arm
that got better after a drift is believed soon.

- **Allocation** (`shares`): ``thompson`` (probability matching, Thompson 1933): an arm's share of
  the traffic is the posterior probability that it is the best, estimated from ``draws`` joint
  draws (seeded by the gate's seed and how many labels it has seen: the same state gives the
  same shares); ``ucb`` (UCB1 on the faded means, Auer et al. 2002): the traffic goes to the arm
  with the highest upper bound. Each candidate keeps ``floor`` of the canary traffic (it must be
  served to be seen serving), and the candidates together get at most ``ceiling`` of the keys;
  the champion serves the rest. `route` maps an event's sticky bucket (`canary_bucket`) to an arm.
- **Promotion** (`verdict`): ``passed`` naming the ``winner`` once, after ``min_samples`` labels,
  the best candidate's probability of being the best arm is at least ``threshold`` *and* its
  always-valid confidence sequence (`SequentialDifference`, at ``alpha`` over the number of
  candidates: one chance per candidate) on its paired difference with the champion lies above
  zero. The second condition bounds the false-promotion rate by ``alpha`` however often the gate
  is read and whatever the allocation did; the first keeps a candidate that is better than the
  champion but not the best of the candidates from being promoted before the best one.
  ``failed`` when every candidate is significantly worse than the champion, ``inconclusive``
  after ``max_samples`` labels without either.

Pure and deterministic: no clock; randomness only from ``seed`` and the state.

>>> gate = BanditGate(["a", "b"], min_samples=100, seed=1)
>>> rng = np.random.default_rng(0)
>>> for _ in range(30):
...     champion = (rng.random(100) < 0.7).astype(float)
...     gate.update({"a": (rng.random(100) < 0.7).astype(float), "b": (rng.random(100) < 0.9).astype(float)}, champion)
>>> gate.verdict().evidence["winner"]
'b'
>>> {arm: round(share, 2) for arm, share in gate.shares().items()}
{'champion': 0.5, 'a': 0.03, 'b': 0.48}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from evaluators.base import Phase, Verdict
from evaluators.stats import SequentialDifference

__all__ = ["CHAMPION", "BanditGate"]

CHAMPION = "champion"  # the incumbent arm's name in `shares` and `p_best`


class BanditGate:
    """See the module's docstring. ``candidates``: the arms beside the champion, by name."""

    def __init__(
        self,
        candidates: Sequence[str],
        *,
        policy: str = "thompson",
        discount: float = 0.999,
        threshold: float = 0.95,
        min_samples: int = 300,
        max_samples: int = 20_000,
        alpha: float = 0.05,
        ceiling: float = 0.5,
        floor: float = 0.05,
        draws: int = 2000,
        seed: int = 0,
    ) -> None:
        if not candidates or len(set(candidates)) != len(candidates) or CHAMPION in candidates:
            msg = f"a bandit gate needs one or more candidates, each named once, none {CHAMPION!r}; got {candidates}"
            raise ValueError(msg)
        if policy not in ("thompson", "ucb"):
            msg = f"policy must be 'thompson' or 'ucb', not {policy!r}"
            raise ValueError(msg)
        if not 0 < discount <= 1 or not 0.5 < threshold < 1 or not 0 < alpha < 1 or not 0 < ceiling <= 1:
            msg = "discount in (0, 1], threshold in (0.5, 1), alpha in (0, 1), ceiling in (0, 1]"
            raise ValueError(msg)
        if not 0 <= floor * len(candidates) <= 1 or min_samples < 1 or max_samples < min_samples or draws < 100:
            msg = "floor times the candidates at most 1, 1 <= min_samples <= max_samples, draws >= 100"
            raise ValueError(msg)
        self.candidates = list(candidates)
        self.policy = policy
        self.discount = discount
        self.threshold = threshold
        self.min_samples = min_samples
        self.max_samples = max_samples
        self.alpha = alpha
        self.ceiling = ceiling
        self.floor = floor
        self.draws = draws
        self.seed = seed
        self.reset()

    @property
    def arms(self) -> list[str]:
        return [CHAMPION, *self.candidates]

    def reset(self) -> None:
        """Forget every label; the configuration stays."""
        k = len(self.arms)
        self._right = np.zeros(k)  # faded counts, per arm
        self._wrong = np.zeros(k)
        self._n = 0  # labelled examples seen
        self._p_best: tuple[int, dict[str, float]] | None = None  # at which count it was estimated
        per = self.alpha / len(self.candidates)
        self._diffs = {c: SequentialDifference(alpha=per, n_star=self.min_samples) for c in self.candidates}

    def update(self, scores: Mapping[str, npt.ArrayLike], champion: npt.ArrayLike) -> None:
        """The same labelled examples, scored by every candidate (``scores``, by name) and by the
        champion: 1.0 right, 0.0 wrong, each scored before its model learned the example."""
        base = np.asarray(champion, dtype=np.float64)
        n = len(base)
        if set(scores) != set(self.candidates):
            msg = f"scores for {sorted(scores)}, the gate's candidates are {sorted(self.candidates)}"
            raise ValueError(msg)
        rows = [base, *(np.asarray(scores[c], dtype=np.float64) for c in self.candidates)]
        if any(r.shape != (n,) or not np.isfinite(r).all() for r in rows):
            msg = "every arm's scores must be finite, one per example, as many as the champion's"
            raise ValueError(msg)
        if n == 0:
            return
        right = np.array([r.sum() for r in rows])
        fade = self.discount**n
        self._right = self._right * fade + right
        self._wrong = self._wrong * fade + (n - right)
        self._n += n
        for c, r in zip(self.candidates, rows[1:], strict=True):
            self._diffs[c].update(r - base)

    def p_best(self) -> dict[str, float]:
        """Each arm's posterior probability of being the most accurate (Beta(1 + right, 1 + wrong)):
        a function of the labels seen, estimated once for each count of them."""
        if self._p_best is not None and self._p_best[0] == self._n:
            return dict(self._p_best[1])
        rng = np.random.default_rng((self.seed, self._n))
        samples = rng.beta(1 + self._right[:, None], 1 + self._wrong[:, None], size=(len(self.arms), self.draws))
        wins = np.bincount(np.argmax(samples, axis=0), minlength=len(self.arms)) / self.draws
        p = dict(zip(self.arms, wins.tolist(), strict=True))
        self._p_best = (self._n, p)
        return dict(p)

    def shares(self) -> dict[str, float]:
        """The traffic each arm serves: the candidates' shares of the keys (together at most
        ``ceiling``, each at least ``floor`` of that), and the champion's, the rest."""
        k = len(self.candidates)
        if self.policy == "thompson":
            p = self.p_best()
            weight = np.array([p[c] for c in self.candidates])
        else:
            weight = np.zeros(k)
            weight[int(np.argmax(self._ucb()[1:]))] = 1.0
        total = weight.sum()
        weight = weight / total if total > 0 else np.full(k, 1 / k)
        weight = self.floor + (1 - self.floor * k) * weight  # each keeps its floor
        candidate = self.ceiling * weight
        return {CHAMPION: float(1 - candidate.sum()), **dict(zip(self.candidates, candidate.tolist(), strict=True))}

    def verdict(self) -> Verdict:
        evidence: dict[str, float | int | str | bool | None] = {"n": self._n}
        if self._n < self.min_samples:
            return Verdict(Phase.PENDING, f"{self._n} of {self.min_samples} labelled examples", evidence)
        p = self.p_best()
        best = max(self.candidates, key=p.__getitem__)
        low, high = self._diffs[best].interval()
        evidence |= {f"p_best_{arm}": round(v, 4) for arm, v in p.items()}
        evidence |= {"winner": best, "difference": round(self._diffs[best].mean, 4), "low": low, "high": high}
        if p[best] >= self.threshold and low > 0:
            why = (f"{best} is the best arm with probability {p[best]:.3f} (at least {self.threshold}) and better "
                   f"than the champion by {self._diffs[best].mean:.3f} (always-valid interval {low:.3f} to {high:.3f} "
                   f"at {self.alpha / len(self.candidates):.3g}) over {self._n} labelled examples")  # fmt: skip
            return Verdict(Phase.PASSED, why, evidence)
        if all(self._diffs[c].interval()[1] < 0 for c in self.candidates):
            return Verdict(Phase.FAILED, f"every candidate is worse than the champion over {self._n} examples",
                           evidence)  # fmt: skip
        if self._n >= self.max_samples:
            return Verdict(Phase.INCONCLUSIVE, f"no candidate clearly best within {self.max_samples} examples",
                           evidence)  # fmt: skip
        return Verdict(Phase.RUNNING, f"{best} leads with probability {p[best]:.3f}", evidence)

    def _ucb(self) -> npt.NDArray[np.float64]:
        seen = self._right + self._wrong
        mean = (1 + self._right) / (2 + seen)
        return mean + np.sqrt(2 * math.log(max(seen.sum(), 2)) / np.maximum(seen, 1))

    @staticmethod
    def route(buckets: npt.ArrayLike, shares: Mapping[str, float]) -> list[str]:
        """Each event's arm from its sticky bucket in [0, 1) (`canary_bucket`): the candidates take
        consecutive stretches from 0 in their order, the champion the rest."""
        names = [arm for arm in shares if arm != CHAMPION]
        edges = np.cumsum([shares[arm] for arm in names])
        at = np.searchsorted(edges, np.asarray(buckets, dtype=np.float64), side="right")
        return [names[i] if i < len(names) else CHAMPION for i in at.tolist()]
