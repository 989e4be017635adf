"""ChangeDetector: ADWIN over per-example scores says when their mean moved, and from what to what."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from evaluators import ChangeDetector


def _bernoulli(rng: np.random.Generator, p: float, n: int) -> np.ndarray:
    return (rng.random(n) < p).astype(np.float64)


def test_a_drop_in_accuracy_is_found_soon_after_it_happens() -> None:
    rng = np.random.default_rng(0)
    watch = ChangeDetector()
    for _ in range(30):
        watch.update(_bernoulli(rng, 0.97, 100))
        assert not watch.changed
    found_after = None
    for batch in range(20):
        watch.update(_bernoulli(rng, 0.68, 100))  # 30 % of the labels flipped
        if watch.changed:
            found_after = batch
            break
    assert found_after is not None and found_after <= 3
    assert watch.last is not None
    assert watch.last.before > 0.9 and watch.last.after < watch.last.before


def test_a_stable_stream_raises_no_alarm_in_most_seeded_runs() -> None:
    alarms = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        watch = ChangeDetector()
        for _ in range(50):
            watch.update(_bernoulli(rng, 0.9, 100))
            alarms += watch.changed
    assert alarms <= 2


def test_reset_pickle_and_config() -> None:
    rng = np.random.default_rng(1)
    watch = ChangeDetector(delta=0.01)
    watch.update(_bernoulli(rng, 0.9, 500))
    copy = pickle.loads(pickle.dumps(watch))
    more = _bernoulli(rng, 0.2, 300)
    watch.update(more)
    copy.update(more)
    assert (watch.changed, watch.last) == (copy.changed, copy.last)
    watch.reset()
    assert (watch.n, watch.changed, watch.last) == (0, False, None)
    with pytest.raises(ValueError, match="delta"):
        ChangeDetector(delta=0.0)
