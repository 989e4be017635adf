"""One contract, every evaluator: no verdict without data, determinism, snapshots, reset, readable verdicts."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from evaluators import (
    FAIL_FLOOR,
    CanaryEvaluator,
    Evaluator,
    GoldenEvaluator,
    Paired,
    Phase,
    ProbationEvaluator,
    RefreshEvaluator,
    ShadowEvaluator,
    Verdict,
)
from tests.evaluators.simulate import bernoulli_pair


@dataclass(frozen=True)
class Case:
    make: Callable[[], Evaluator]
    minimum: int  # examples before a verdict may conclude anything


CASES = [
    pytest.param(Case(lambda: ShadowEvaluator(min_samples=100, max_samples=1000), 100), id="shadow"),
    pytest.param(Case(lambda: CanaryEvaluator(min_samples_per_step=100, max_samples=2000), 100), id="canary"),
    pytest.param(Case(lambda: GoldenEvaluator(tolerance=0.02, min_size=40), 40), id="golden"),
    pytest.param(Case(lambda: ProbationEvaluator(min_samples=100, samples=600), 100), id="probation"),
    # A clearly better fork passes from the fail floor on, before min_samples.
    pytest.param(Case(lambda: RefreshEvaluator(min_samples=100, margin=0.01), FAIL_FLOOR), id="refresh"),
]
SHARED_EVIDENCE = {"n", "candidate_mean", "champion_mean", "diff"}


def _stream(seed: int = 0, batches: int = 40, size: int = 45) -> list[Paired]:
    """A candidate a little better than the champion: trials take a while, and several phases show."""
    rng = np.random.default_rng(seed)
    return [bernoulli_pair(rng, 0.84, 0.8, size) for _ in range(batches)]


def _replay(evaluator: Evaluator, batches: list[Paired]) -> list[Verdict]:
    verdicts = []
    for batch in batches:
        evaluator.update(batch)
        verdicts.append(evaluator.verdict())
    return verdicts


def _assert_readable(verdict: Verdict) -> None:
    assert isinstance(verdict.reason, str) and verdict.reason.strip()
    assert set(verdict.evidence) >= SHARED_EVIDENCE
    assert all(v is None or isinstance(v, str | int | float | bool) for v in verdict.evidence.values())
    json.dumps(dict(verdict.evidence), allow_nan=False)  # strict JSON: no NaN, no Infinity


@pytest.mark.parametrize("case", CASES)
def test_is_an_evaluator(case: Case) -> None:
    assert isinstance(case.make(), Evaluator)


@pytest.mark.parametrize("case", CASES)
def test_no_data_is_pending(case: Case) -> None:
    evaluator = case.make()
    verdict = evaluator.verdict()
    assert verdict.phase is Phase.PENDING
    assert verdict.evidence["n"] == 0
    _assert_readable(verdict)
    evaluator.update(Paired(np.empty(0), np.empty(0)))
    assert evaluator.verdict().phase is Phase.PENDING


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("score", [0.0, 1.0, "drawn"])
def test_no_conclusion_before_enough_data(case: Case, score: float | str) -> None:
    """Fewer than the minimum of equal scores, in batches: never passed, never failed."""
    n = case.minimum - 1
    drawn = (np.random.default_rng(3).random(n) < 0.8).astype(np.float64)
    same = drawn if score == "drawn" else np.full(n, score)
    evaluator = case.make()
    for start in range(0, n, 7):
        evaluator.update(Paired(same[start : start + 7].copy(), same[start : start + 7].copy()))
        assert evaluator.verdict().phase is Phase.PENDING, evaluator.verdict()


@pytest.mark.parametrize("case", CASES)
def test_deterministic(case: Case) -> None:
    first = _replay(case.make(), _stream())
    second = _replay(case.make(), _stream())
    assert first == second
    assert len({v.phase for v in first}) >= 2  # the stream is not a trivial one


@pytest.mark.parametrize("case", CASES)
def test_pickle_round_trip_mid_trial(case: Case) -> None:
    batches = _stream(seed=1)
    live = case.make()
    _replay(live, batches[:3])
    assert live.verdict().evidence["n"] > 0  # type: ignore[operator]
    restored: Evaluator = pickle.loads(pickle.dumps(live))
    assert restored is not live
    assert restored.verdict() == live.verdict()
    assert _replay(restored, batches[3:]) == _replay(live, batches[3:])


@pytest.mark.parametrize("case", CASES)
def test_reset_starts_a_fresh_trial(case: Case) -> None:
    batches = _stream(seed=2)
    evaluator = case.make()
    _replay(evaluator, batches)
    evaluator.reset()
    verdict = evaluator.verdict()
    assert verdict.phase is Phase.PENDING
    assert verdict.evidence["n"] == 0
    assert _replay(evaluator, batches) == _replay(case.make(), batches)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("p_candidate", "p_champion"), [(0.8, 0.8), (0.95, 0.6), (0.5, 0.9)])
def test_every_verdict_is_readable(case: Case, p_candidate: float, p_champion: float) -> None:
    rng = np.random.default_rng(4)
    evaluator = case.make()
    _assert_readable(evaluator.verdict())
    for size in [1, 1, 3, *([60] * 30)]:
        evaluator.update(bernoulli_pair(rng, p_candidate, p_champion, size))
        _assert_readable(evaluator.verdict())


@pytest.mark.parametrize("case", CASES)
def test_a_final_verdict_rests_on_data(case: Case) -> None:
    rng = np.random.default_rng(5)
    evaluator = case.make()
    for _ in range(60):
        evaluator.update(bernoulli_pair(rng, 0.95, 0.6, 60))
        verdict = evaluator.verdict()
        if verdict.phase.final:
            assert verdict.evidence["n"] >= case.minimum  # type: ignore[operator]
            break
    else:
        pytest.fail(f"a clearly better candidate got no verdict: {evaluator.verdict()}")
