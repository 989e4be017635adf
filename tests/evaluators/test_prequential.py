"""PrequentialScore: cumulative and rolling accuracy, and no verdict without evidence."""

from __future__ import annotations

import math
import pickle
import random
from typing import Any

import numpy as np
import pytest

from evaluators import PrequentialScore, PrequentialSnapshot, correctness, log_loss, paired_correctness


def test_no_data_means_no_accuracy() -> None:
    score = PrequentialScore(window=10)
    assert score.snapshot() == PrequentialSnapshot(0, None, None)
    score.update([], [])
    assert score.snapshot() == PrequentialSnapshot(0, None, None)


def test_cumulative_and_rolling_accuracy() -> None:
    score = PrequentialScore(window=4)
    score.update([1, 1, 1, 1], [1, 1, 1, 1])
    s = score.snapshot()
    assert (s.n, s.accuracy, s.rolling_accuracy) == (4, 1.0, 1.0)

    score.update([0, 0], [1, 1])  # two wrong
    s = score.snapshot()
    assert s.n == 6
    assert s.accuracy == pytest.approx(4 / 6)
    assert s.rolling_accuracy == pytest.approx(2 / 4)  # window holds the last 4: right, right, wrong, wrong

    score.update([0, 0, 0, 0], [1, 1, 1, 1])  # the window is now all wrong
    s = score.snapshot()
    assert s.n == 10
    assert s.accuracy == pytest.approx(4 / 10)
    assert s.rolling_accuracy == 0.0


def test_rolling_window_of_one_tracks_the_last_prediction() -> None:
    score = PrequentialScore(window=1)
    score.update([1, 0], [1, 1])
    assert score.snapshot().rolling_accuracy == 0.0
    score.update([2], [2])
    s = score.snapshot()
    assert s.rolling_accuracy == 1.0
    assert s.accuracy == pytest.approx(2 / 3)


def test_window_larger_than_data_equals_cumulative() -> None:
    score = PrequentialScore(window=1000)
    score.update([0, 1, 2, 1, 0], [0, 1, 1, 1, 2])
    s = score.snapshot()
    assert s.accuracy == pytest.approx(3 / 5)
    assert s.rolling_accuracy == s.accuracy


def test_mismatched_lengths_are_refused() -> None:
    score = PrequentialScore()
    with pytest.raises(ValueError):
        score.update([1, 0], [1])


def test_score_survives_pickle() -> None:
    score = PrequentialScore(window=3)
    score.update([1, 0, 1, 1], [1, 1, 1, 0])
    restored = pickle.loads(pickle.dumps(score))
    assert restored.snapshot() == score.snapshot()
    restored.update([1], [1])
    score.update([1], [1])
    assert restored.snapshot() == score.snapshot()


def test_refused_update_leaves_the_score_unchanged() -> None:
    score = PrequentialScore(window=10)
    score.update([1, 1], [1, 1])
    before = score.snapshot()
    with pytest.raises(ValueError):
        score.update([0, 0, 0], [1, 1])
    assert score.snapshot() == before
    score.update([1], [1])
    assert score.snapshot() == PrequentialSnapshot(3, 1.0, 1.0)


@pytest.mark.parametrize("window", [1, 3, 50])
def test_matches_rivers_metrics_batch_after_batch(window: int) -> None:
    from river import metrics, utils

    rng = random.Random(window)
    score = PrequentialScore(window)
    overall = metrics.Accuracy()
    rolling: Any = utils.Rolling(metrics.Accuracy, window_size=window)
    for _ in range(100):
        n = rng.randint(0, 120)
        y_true = [rng.randint(0, 2) for _ in range(n)]
        y_pred = [rng.randint(0, 2) for _ in range(n)]
        score.update(y_true, y_pred)
        for t, p in zip(y_true, y_pred, strict=True):
            overall.update(t, p)
            rolling.update(t, p)
        snap = score.snapshot()
        if snap.n:
            assert snap.accuracy == pytest.approx(overall.get(), abs=1e-12)
            assert snap.rolling_accuracy == pytest.approx(rolling.get(), abs=1e-12)


# --- log loss -----------------------------------------------------------------------------------------


def test_no_probabilities_means_no_log_loss() -> None:
    score = PrequentialScore(window=10)
    score.update([1, 0], [1, 1])
    s = score.snapshot()
    assert (s.log_loss, s.rolling_log_loss) == (None, None)
    assert s.accuracy == 0.5


def test_cumulative_and_rolling_log_loss() -> None:
    score = PrequentialScore(window=2)
    score.update([1, 1, 0], [1, 1, 0], proba_true=[0.5, 0.25, 1.0])
    s = score.snapshot()
    losses = [math.log(2), math.log(4), 0.0]
    assert s.log_loss == pytest.approx(sum(losses) / 3)
    assert s.rolling_log_loss == pytest.approx((losses[1] + losses[2]) / 2)
    score.update([1], [0], proba_true=[0.125])
    s = score.snapshot()
    assert s.log_loss == pytest.approx((sum(losses) + math.log(8)) / 4)
    assert s.rolling_log_loss == pytest.approx(math.log(8) / 2)  # window: 1.0 and 0.125
    assert s.accuracy == pytest.approx(3 / 4)  # probabilities leave accuracy alone


def test_log_loss_counts_only_examples_that_came_with_probabilities() -> None:
    score = PrequentialScore(window=10)
    score.update([1, 1], [1, 1])
    score.update([1], [1], proba_true=[0.5])
    s = score.snapshot()
    assert s.n == 3
    assert s.log_loss == pytest.approx(math.log(2))
    assert s.rolling_log_loss == pytest.approx(math.log(2))


def test_probabilities_are_clipped() -> None:
    score = PrequentialScore(window=10)
    score.update([1, 1], [0, 1], proba_true=[0.0, 1.5])
    s = score.snapshot()
    assert s.log_loss == pytest.approx(-math.log(1e-15) / 2)


@pytest.mark.parametrize("proba", [[0.5], [0.5, float("nan")]])
def test_bad_probabilities_are_refused_and_change_nothing(proba: list[float]) -> None:
    score = PrequentialScore(window=10)
    score.update([1], [1], proba_true=[0.5])
    before = score.snapshot()
    with pytest.raises(ValueError):
        score.update([1, 0], [1, 0], proba_true=proba)
    assert score.snapshot() == before


@pytest.mark.parametrize("window", [1, 7, 50])
def test_log_loss_matches_rivers_metrics_batch_after_batch(window: int) -> None:
    from river import metrics, utils

    rng = np.random.default_rng(window)
    score = PrequentialScore(window)
    overall = metrics.LogLoss()
    rolling: Any = utils.Rolling(metrics.LogLoss, window_size=window)
    for _ in range(60):
        n = int(rng.integers(0, 40))
        y = rng.integers(0, 2, n)
        p1 = rng.uniform(0.01, 0.99, n)  # the model's probability of class 1
        score.update(y, (p1 > 0.5).astype(int), proba_true=np.where(y == 1, p1, 1 - p1))
        for t, p in zip(y, p1, strict=True):
            overall.update(bool(t), float(p))
            rolling.update(bool(t), float(p))
        snap = score.snapshot()
        if snap.n:
            assert snap.log_loss == pytest.approx(overall.get(), abs=1e-9)
            assert snap.rolling_log_loss == pytest.approx(rolling.get(), abs=1e-9)


def test_a_snapshot_from_before_log_loss_resumes() -> None:
    score = PrequentialScore(window=3)
    score.update([1, 0], [1, 1])
    old_state = {k: v for k, v in vars(score).items() if not k.startswith("_loss")}
    restored = PrequentialScore.__new__(PrequentialScore)
    restored.__setstate__(old_state)
    assert restored.snapshot() == PrequentialSnapshot(2, 0.5, 0.5)
    restored.update([1], [1], proba_true=[0.5])
    assert restored.snapshot().log_loss == pytest.approx(math.log(2))


def test_log_loss_survives_pickle() -> None:
    score = PrequentialScore(window=3)
    score.update([1, 0, 1, 1], [1, 1, 1, 0], proba_true=[0.9, 0.2, 0.6, 0.3])
    restored = pickle.loads(pickle.dumps(score))
    assert restored.snapshot() == score.snapshot()


def test_per_example_scores() -> None:
    assert correctness([1, 0, 2], [1, 1, 2]).tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError):
        correctness([1, 0], [1])
    np.testing.assert_allclose(log_loss([1.0, 0.5, 0.0]), [0.0, math.log(2), -math.log(1e-15)])
    paired = paired_correctness([1, 0, 1], [1, 0, 0], [0, 0, 1])
    assert (paired.candidate.tolist(), paired.champion.tolist()) == ([1.0, 1.0, 0.0], [0.0, 1.0, 1.0])
