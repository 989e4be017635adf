"""GoldenEvaluator and Reservoir: a frozen reference set that a candidate must not regress on."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from evaluators import GoldenEvaluator, Paired, Phase, Reservoir


def _golden(n: int, candidate_right: int, champion_right: int) -> Paired:
    """Correctness on an n-example golden set with that many right answers each."""
    return Paired((np.arange(n) < candidate_right).astype(float), (np.arange(n) < champion_right).astype(float))


def test_pending_before_any_evaluation_and_on_a_small_set() -> None:
    ev = GoldenEvaluator(tolerance=0.02, min_size=50)
    assert ev.verdict().phase is Phase.PENDING
    assert ev.verdict().evidence["n"] == 0
    ev.update(_golden(12, 0, 12))  # a catastrophic regression, but on too small a set to judge
    verdict = ev.verdict()
    assert verdict.phase is Phase.PENDING
    assert verdict.reason == "golden set has 12 examples, needs 50"


def test_a_regression_beyond_the_tolerance_fails() -> None:
    ev = GoldenEvaluator(tolerance=0.02, min_size=50)
    ev.update(_golden(500, 300, 455))
    verdict = ev.verdict()
    assert verdict.phase is Phase.FAILED
    assert verdict.reason == "the candidate regresses by 0.310 on the 500-example golden set, tolerance 0.020"
    assert verdict.evidence["diff"] == pytest.approx(-0.31)
    assert (verdict.evidence["candidate_mean"], verdict.evidence["champion_mean"]) == (0.6, 0.91)


@pytest.mark.parametrize(
    ("candidate_right", "phase"), [(960, Phase.FAILED), (975, Phase.FAILED), (985, Phase.PASSED), (1000, Phase.PASSED)]
)
def test_the_tolerance_is_the_line(candidate_right: int, phase: Phase) -> None:
    ev = GoldenEvaluator(tolerance=0.02, min_size=50)
    ev.update(_golden(1000, candidate_right, 1000))  # the champion is right on all 1000
    assert ev.verdict().phase is phase


def test_within_the_tolerance_and_better_both_pass() -> None:
    ev = GoldenEvaluator(tolerance=0.02, min_size=50)
    ev.update(_golden(1000, 890, 900))
    assert ev.verdict().phase is Phase.PASSED
    assert "within the tolerance" in ev.verdict().reason
    ev.update(_golden(1000, 950, 900))
    assert ev.verdict().phase is Phase.PASSED
    assert ev.verdict().reason == "the candidate is higher by 0.050 on the 1000-example golden set, tolerance 0.020"


def test_each_evaluation_replaces_the_last() -> None:
    ev = GoldenEvaluator(min_size=50)
    ev.update(_golden(100, 10, 90))
    assert ev.verdict().phase is Phase.FAILED
    ev.update(_golden(100, 90, 90))
    assert ev.verdict().phase is Phase.PASSED
    assert ev.verdict().evidence["n"] == 100


def test_the_evaluation_is_copied_not_aliased() -> None:
    ev = GoldenEvaluator(min_size=50)
    scores = _golden(100, 90, 90)
    ev.update(scores)
    scores.candidate[:] = 0.0
    assert ev.verdict().phase is Phase.PASSED


def test_non_finite_scores_are_refused() -> None:
    ev = GoldenEvaluator(min_size=1)
    with pytest.raises(ValueError, match="finite"):
        ev.update(Paired(np.array([np.nan]), np.array([1.0])))
    assert ev.verdict().phase is Phase.PENDING


# --- Reservoir --------------------------------------------------------------------------------------


def _stream(n: int, d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Row i carries i in every feature and as its label, so a sampled row shows where it came from."""
    idx = np.arange(n)
    return np.repeat(idx[:, None], d, axis=1).astype(np.float64), idx.astype(np.int64)


def _fill(reservoir: Reservoir, x: np.ndarray, y: np.ndarray, batch: int) -> None:
    for start in range(0, len(y), batch):
        reservoir.add(x[start : start + batch], y[start : start + batch])


def test_keeps_exactly_capacity_rows_each_a_real_row() -> None:
    r = Reservoir(capacity=1000, n_features=3, seed=0)
    x, y = _stream(10_000)
    _fill(r, x, y, 137)
    rx, ry = r.arrays()
    assert len(r) == 1000 and r.seen == 10_000
    assert rx.shape == (1000, 3) and ry.shape == (1000,)
    assert len(np.unique(ry)) == 1000  # no row twice
    np.testing.assert_array_equal(rx, np.repeat(ry[:, None], 3, axis=1).astype(float))  # x and y still paired


def test_holds_everything_while_under_capacity() -> None:
    r = Reservoir(capacity=100, n_features=3, seed=0)
    x, y = _stream(60)
    _fill(r, x, y, 25)
    rx, ry = r.arrays()
    np.testing.assert_array_equal(ry, y)
    np.testing.assert_array_equal(rx, x)


@pytest.mark.parametrize("seed", range(5))
def test_sample_is_uniform_over_the_stream(seed: int) -> None:
    r = Reservoir(capacity=1000, n_features=3, seed=seed)
    x, y = _stream(10_000)
    _fill(r, x, y, 250)
    per_chunk = np.bincount(r.arrays()[1] // 1000, minlength=10)
    assert per_chunk.sum() == 1000
    assert np.all(np.abs(per_chunk - 100) <= 50), per_chunk  # each tenth of the stream: 10 +- 5 %


def test_uniform_across_many_seeds() -> None:
    # Inclusion frequency of the first and the last thousand rows over 40 seeds: both near 10%.
    counts = np.zeros(10)
    for seed in range(40):
        r = Reservoir(capacity=1000, n_features=1, seed=seed)
        x, y = _stream(10_000, d=1)
        _fill(r, x, y, 500)
        counts += np.bincount(r.arrays()[1] // 1000, minlength=10)
    np.testing.assert_allclose(counts / (40 * 1000), 0.1, atol=0.01)


def test_deterministic_under_a_seed_and_independent_of_batching() -> None:
    x, y = _stream(5000)
    samples = []
    for batch in (1, 64, 999, 5000):
        r = Reservoir(capacity=300, n_features=3, seed=42)
        _fill(r, x, y, batch)
        samples.append(r.arrays()[1])
    for other in samples[1:]:
        np.testing.assert_array_equal(other, samples[0])
    other_seed = Reservoir(capacity=300, n_features=3, seed=43)
    _fill(other_seed, x, y, 64)
    assert not np.array_equal(other_seed.arrays()[1], samples[0])


def test_frozen_copy_is_independent_of_later_adds() -> None:
    r = Reservoir(capacity=100, n_features=3, seed=1)
    x, y = _stream(10_000)
    r.add(x[:500], y[:500])
    golden = r.frozen()
    gx, gy = golden.arrays()
    r.add(x[500:], y[500:])
    assert not np.array_equal(r.arrays()[1], gy)  # the live reservoir moved on
    np.testing.assert_array_equal(golden.arrays()[0], gx)
    np.testing.assert_array_equal(golden.arrays()[1], gy)
    assert golden.seen == 500
    live_y = r.arrays()[1]
    golden.add(x[:5000], y[:5000])  # and the other way round
    np.testing.assert_array_equal(r.arrays()[1], live_y)


def test_arrays_are_copies() -> None:
    r = Reservoir(capacity=10, n_features=3, seed=0)
    r.add(*_stream(10))
    x, y = r.arrays()
    x[:] = -1.0
    y[:] = -1
    assert r.arrays()[1].tolist() == list(range(10))
    assert r.arrays()[0].min() == 0.0


def test_pickles_small_and_round_trips() -> None:
    empty = Reservoir(capacity=100_000, n_features=100, seed=0)
    assert len(pickle.dumps(empty)) < 5_000
    r = Reservoir(capacity=50, n_features=3, seed=0)
    x, y = _stream(1000)
    r.add(x[:500], y[:500])
    restored = pickle.loads(pickle.dumps(r))
    r.add(x[500:], y[500:])
    restored.add(x[500:], y[500:])
    np.testing.assert_array_equal(restored.arrays()[1], r.arrays()[1])


def test_mis_shaped_rows_are_refused() -> None:
    r = Reservoir(capacity=10, n_features=3, seed=0)
    with pytest.raises(ValueError, match="shape"):
        r.add(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        r.add(np.zeros((4, 3)), np.zeros(3))
    assert len(r) == 0 and r.seen == 0


@pytest.mark.parametrize(("kwargs", "name"), [({"capacity": 0}, "capacity"), ({"n_features": 0}, "n_features")])
def test_bad_reservoir_configuration_is_refused(kwargs: dict[str, int], name: str) -> None:
    args = {"capacity": 10, "n_features": 3, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=name):
        Reservoir(**args)


@pytest.mark.parametrize(("kwargs", "name"), [({"tolerance": -0.1}, "tolerance"), ({"min_size": 0}, "min_size")])
def test_bad_golden_configuration_is_refused(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        GoldenEvaluator(**kwargs)  # type: ignore[arg-type]
