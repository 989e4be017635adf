"""Golden-set evaluation: a frozen reference set that guards against forgetting and poisoning.

Live traffic tells how a candidate does on what arrives now; a stream that drifts, or one fed bad
labels on purpose, can teach a model to forget what it knew and still look fine there. The golden
set is a uniform sample of labelled rows, frozen at some point, that every candidate must still
answer about as well as the champion does.
"""

from __future__ import annotations

import copy

import numpy as np
import numpy.typing as npt

from evaluators._trial import check_at_least, fmt
from evaluators.base import Paired, Phase, Verdict

__all__ = ["GoldenEvaluator", "Reservoir"]


class GoldenEvaluator:
    """Compares the candidate's and the champion's mean scores on the whole golden set.

    Each ``update`` is one full evaluation and replaces the previous one: the set is fixed, so
    there is nothing to accumulate, only the latest models to compare.

    >>> import numpy as np
    >>> ev = GoldenEvaluator(tolerance=0.02, min_size=4)
    >>> ev.update(Paired(candidate=np.array([1.0, 0, 0, 0]), champion=np.ones(4)))
    >>> ev.verdict().reason
    'the candidate regresses by 0.750 on the 4-example golden set, tolerance 0.020'
    """

    def __init__(self, tolerance: float = 0.02, min_size: int = 50) -> None:
        check_at_least("tolerance", tolerance, 0.0)
        check_at_least("min_size", min_size, 1)
        self.tolerance = tolerance
        self.min_size = min_size
        self._last: Paired | None = None

    def reset(self) -> None:
        self._last = None

    def update(self, outcomes: Paired) -> None:
        if not (np.isfinite(outcomes.candidate).all() and np.isfinite(outcomes.champion).all()):
            msg = "golden-set scores must be finite"
            raise ValueError(msg)
        self._last = Paired(outcomes.candidate.copy(), outcomes.champion.copy())

    def verdict(self) -> Verdict:
        if self._last is None:
            return Verdict(Phase.PENDING, "no golden-set evaluation yet", self._evidence())
        n = len(self._last)
        if n < self.min_size:
            return Verdict(Phase.PENDING, f"golden set has {n} examples, needs {self.min_size}", self._evidence())
        diff = float(self._last.candidate.mean() - self._last.champion.mean())
        where = f"on the {n}-example golden set, tolerance {fmt(self.tolerance)}"
        if diff < -self.tolerance:
            return Verdict(Phase.FAILED, f"the candidate regresses by {fmt(-diff)} {where}", self._evidence())
        if diff < 0:
            reason = f"the candidate is lower by {fmt(-diff)}, within the tolerance, {where}"
        else:
            reason = f"the candidate is higher by {fmt(diff)} {where}"
        return Verdict(Phase.PASSED, reason, self._evidence())

    def _evidence(self) -> dict[str, float | int | str | bool | None]:
        last = self._last
        n = len(last) if last is not None else 0
        means = (float(last.candidate.mean()), float(last.champion.mean())) if last is not None and n else None
        return {
            "n": n,
            "candidate_mean": means[0] if means else None,
            "champion_mean": means[1] if means else None,
            "diff": means[0] - means[1] if means else None,
            "tolerance": self.tolerance,
            "min_size": self.min_size,
        }


class Reservoir:
    """A uniform sample of at most ``capacity`` labelled rows from a stream (Vitter's Algorithm R).

    Row ``i`` (0-based) past the first ``capacity`` replaces a random slot with probability
    ``capacity / (i + 1)``. A whole batch is placed at once; each row's slot comes from one uniform
    draw, so the sample depends only on the seed and the rows, not on how they were batched.
    Arrays grow only while the reservoir fills, so an empty one pickles small.

    >>> r = Reservoir(capacity=3, n_features=2, seed=0)
    >>> r.add(np.arange(10.0).reshape(5, 2), np.arange(5))
    >>> len(r), r.arrays()[0].shape
    (3, (3, 2))
    """

    def __init__(self, capacity: int, n_features: int, seed: int) -> None:
        check_at_least("capacity", capacity, 1)
        check_at_least("n_features", n_features, 1)
        self.capacity = capacity
        self.n_features = n_features
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._x = np.empty((0, n_features), dtype=np.float64)
        self._y = np.empty(0, dtype=np.int64)
        self._seen = 0  # rows offered so far

    def __len__(self) -> int:
        return len(self._y)

    @property
    def seen(self) -> int:
        return self._seen

    def add(self, x: npt.ArrayLike, y: npt.ArrayLike) -> None:
        xs = np.asarray(x, dtype=np.float64)
        ys = np.asarray(y, dtype=np.int64)
        if xs.ndim != 2 or xs.shape[1] != self.n_features or ys.shape != (xs.shape[0],):
            msg = f"need x of shape (n, {self.n_features}) and y of shape (n,), got {xs.shape} and {ys.shape}"
            raise ValueError(msg)
        fill = min(self.capacity - len(self), len(ys))
        if fill:
            self._x = np.concatenate([self._x, xs[:fill]])
            self._y = np.concatenate([self._y, ys[:fill]])
        rest = len(ys) - fill
        if rest:
            positions = self._seen + fill + np.arange(rest)  # 0-based stream index of each row
            slots = np.floor(self._rng.random(rest) * (positions + 1)).astype(np.int64)
            keep = np.flatnonzero(slots < self.capacity)
            # Rows land in stream order, so of two rows drawn to one slot the later one stays.
            last_first = keep[::-1]
            _, first = np.unique(slots[last_first], return_index=True)
            winners = last_first[first]
            self._x[slots[winners]] = xs[fill:][winners]
            self._y[slots[winners]] = ys[fill:][winners]
        self._seen += len(ys)

    def arrays(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Copies of the rows and labels held now."""
        return self._x.copy(), self._y.copy()

    def frozen(self) -> Reservoir:
        """An independent copy: later adds to this reservoir do not reach it (a golden set)."""
        return copy.deepcopy(self)
