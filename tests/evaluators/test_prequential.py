"""PrequentialScore: cumulative and rolling accuracy, and no verdict without evidence."""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest

from evaluators import PrequentialScore, PrequentialSnapshot


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
