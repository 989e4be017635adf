"""Prequential (test-then-train) accuracy: every example is scored before the model learns it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from river import metrics, utils

__all__ = ["PrequentialScore", "PrequentialSnapshot"]


@dataclass(frozen=True)
class PrequentialSnapshot:
    """What the score says right now; ``None`` where there is no evidence yet (no data is no success)."""

    n: int
    accuracy: float | None
    rolling_accuracy: float | None


class PrequentialScore:
    """Cumulative and rolling accuracy of predictions made *before* learning from their labels.

    >>> score = PrequentialScore(window=2)
    >>> score.update([1, 0, 1], [1, 1, 1])
    >>> s = score.snapshot()
    >>> (s.n, round(s.accuracy, 3), s.rolling_accuracy)
    (3, 0.667, 0.5)
    """

    def __init__(self, window: int = 1000) -> None:
        self.window = window
        self._overall = metrics.Accuracy()
        self._rolling: Any = utils.Rolling(metrics.Accuracy, window_size=window)  # proxies Accuracy
        self._n = 0

    def update(self, y_true: Sequence[int], y_pred: Sequence[int]) -> None:
        if len(y_true) != len(y_pred):
            msg = f"{len(y_true)} labels but {len(y_pred)} predictions"
            raise ValueError(msg)
        for t, p in zip(y_true, y_pred, strict=True):
            self._overall.update(t, p)
            self._rolling.update(t, p)
        self._n += len(y_true)

    def snapshot(self) -> PrequentialSnapshot:
        if self._n == 0:
            return PrequentialSnapshot(0, None, None)
        return PrequentialSnapshot(self._n, float(self._overall.get()), float(self._rolling.get()))
