"""Prequential (test-then-train) scores: every example is scored before the model learns it.

Accuracy, and log loss where the model gave a probability for the true class; plus the per-example
scores (higher is better) that the paired evaluators take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from evaluators.base import Paired

__all__ = [
    "PROBA_FLOOR",
    "PrequentialScore",
    "PrequentialSnapshot",
    "correctness",
    "log_loss",
    "paired_correctness",
]

# A probability of 0 for the true class would be an infinite loss; clip, as scikit-learn and River do.
PROBA_FLOOR = 1e-15


@dataclass(frozen=True)
class PrequentialSnapshot:
    """What the score says right now; ``None`` where there is no evidence yet (no data is no success)."""

    n: int
    accuracy: float | None
    rolling_accuracy: float | None
    log_loss: float | None = None
    rolling_log_loss: float | None = None


def correctness(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """1.0 where the prediction is right, 0.0 where it is wrong: a per-example score.

    >>> correctness([1, 0, 2], [1, 1, 2]).tolist()
    [1.0, 0.0, 1.0]
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape:
        msg = f"{t.shape} labels but {p.shape} predictions"
        raise ValueError(msg)
    scores: npt.NDArray[np.float64] = (t == p).astype(np.float64)
    return scores


def log_loss(proba_true: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Per-example log loss from the probability each model gave the true class (clipped to
    [1e-15, 1]); its negation is a higher-is-better score for ``Paired``. NaN is refused."""
    p = np.asarray(proba_true, dtype=np.float64)
    if np.isnan(p).any():
        msg = f"probabilities must not be NaN, got {int(np.isnan(p).sum())} of {p.size}"
        raise ValueError(msg)
    losses: npt.NDArray[np.float64] = -np.log(np.clip(p, PROBA_FLOOR, 1.0))
    return losses


def paired_correctness(y_true: npt.ArrayLike, candidate_pred: npt.ArrayLike, champion_pred: npt.ArrayLike) -> Paired:
    """Correctness of two models' predictions on the same labelled examples, ready for an evaluator."""
    return Paired(correctness(y_true, candidate_pred), correctness(y_true, champion_pred))


class PrequentialScore:
    """Cumulative accuracy, and accuracy over the last ``window`` examples, of predictions made
    *before* learning from their labels; the same for log loss over the examples that came with
    the probability of their true class.

    Scores a whole micro-batch with numpy: River's ``utils.Rolling(metrics.Accuracy)`` did the
    same one example at a time and took half of the group step's time (measured with pyinstrument).

    >>> score = PrequentialScore(window=2)
    >>> score.update([1, 0, 1], [1, 1, 1])
    >>> s = score.snapshot()
    >>> (s.n, round(s.accuracy, 3), s.rolling_accuracy, s.log_loss)
    (3, 0.667, 0.5, None)
    >>> score.update([1], [1], proba_true=[0.5])
    >>> round(score.snapshot().log_loss, 3)
    0.693
    """

    def __init__(self, window: int = 1000) -> None:
        if window < 1:
            msg = f"window must be at least 1, got {window}"
            raise ValueError(msg)
        self.window = window
        self._n = 0
        self._correct = 0
        self._ring = np.zeros(window, dtype=np.bool_)  # correctness of the last `window` examples
        self._ring_correct = 0
        self._init_loss()

    def _init_loss(self) -> None:
        self._loss_n = 0
        self._loss_sum = 0.0
        self._loss_ring = np.zeros(self.window, dtype=np.float64)  # log loss of the last `window` examples

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Snapshots written before log loss existed resume with no log-loss evidence.
        self.__dict__.update(state)
        if "_loss_ring" not in state:
            self._init_loss()

    def update(
        self,
        y_true: Sequence[int] | np.ndarray,
        y_pred: Sequence[int] | np.ndarray,
        proba_true: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        """Score a batch. ``proba_true``, when given, is the probability the model gave each example's
        true class; it adds to the log loss. A refused batch changes nothing."""
        if len(y_true) != len(y_pred):
            msg = f"{len(y_true)} labels but {len(y_pred)} predictions"
            raise ValueError(msg)
        self.update_hits(np.asarray(y_true) == np.asarray(y_pred), proba_true)

    def update_hits(
        self, hits: Sequence[bool] | np.ndarray, proba_true: Sequence[float] | np.ndarray | None = None
    ) -> None:
        """Score a batch already judged: ``hits`` says, per example, whether the prediction was right."""
        hits = np.asarray(hits, dtype=np.bool_)
        losses = None
        if proba_true is not None:
            if len(proba_true) != len(hits):
                msg = f"{len(hits)} labels but {len(proba_true)} probabilities"
                raise ValueError(msg)
            losses = log_loss(proba_true)
        if hits.size == 0:
            return
        self._correct += int(hits.sum())
        tail = hits[-self.window :]
        positions = (self._n + len(hits) - len(tail) + np.arange(len(tail))) % self.window
        self._ring_correct += int(tail.sum()) - int(self._ring[positions].sum())
        self._ring[positions] = tail
        self._n += len(hits)
        if losses is not None:
            self._add_losses(losses)

    def _add_losses(self, losses: npt.NDArray[np.float64]) -> None:
        self._loss_sum += float(losses.sum())
        tail = losses[-self.window :]
        positions = (self._loss_n + len(losses) - len(tail) + np.arange(len(tail))) % self.window
        self._loss_ring[positions] = tail
        self._loss_n += len(losses)

    def snapshot(self) -> PrequentialSnapshot:
        if self._n == 0:
            return PrequentialSnapshot(0, None, None)
        in_window = min(self._n, self.window)
        loss, rolling_loss = None, None
        if self._loss_n:
            loss = self._loss_sum / self._loss_n
            # Summed afresh, not kept as a running sum: float subtraction would drift over a long stream.
            rolling_loss = float(self._loss_ring[: min(self._loss_n, self.window)].mean())
        return PrequentialSnapshot(self._n, self._correct / self._n, self._ring_correct / in_window, loss, rolling_loss)
