"""CanaryEvaluator: share raised step by step, a regression fails at once, routing is sticky."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evaluators import CanaryEvaluator, Paired, Phase, canary_bucket

from .simulate import bernoulli_pair, run_trial


def _scores(n: int, candidate: float, champion: float) -> Paired:
    return Paired(np.full(n, candidate), np.full(n, champion))


def _where(ev: CanaryEvaluator) -> tuple[int, float, Any, Phase]:
    v = ev.verdict()
    return ev.step, ev.share, v.evidence["step_samples"], v.phase


def test_share_rises_step_by_step_after_each_step_has_its_minimum() -> None:
    ev = CanaryEvaluator(steps=(0.05, 0.25, 0.5), min_samples_per_step=200)
    assert _where(ev) == (0, 0.05, 0, Phase.PENDING)
    ev.update(_scores(150, 1.0, 1.0))
    assert _where(ev) == (0, 0.05, 150, Phase.PENDING)
    assert ev.verdict().reason == "150 of 200 canary examples at the first step (5% of traffic)"
    ev.update(_scores(50, 1.0, 1.0))
    assert _where(ev) == (1, 0.25, 0, Phase.RUNNING)
    ev.update(_scores(199, 1.0, 1.0))
    assert _where(ev) == (1, 0.25, 199, Phase.RUNNING)
    ev.update(_scores(1, 1.0, 1.0))
    assert _where(ev) == (2, 0.5, 0, Phase.RUNNING)
    ev.update(_scores(1000, 1.0, 1.0))  # the last step: the share stays, equal models never pass
    assert _where(ev) == (2, 0.5, 1000, Phase.RUNNING)
    assert ev.verdict().reason.startswith("step 3 of 3 (50% of traffic), 1000 of 200 examples; ")
    assert ev.verdict().evidence["n"] == 1400


def test_examples_past_a_steps_minimum_do_not_count_towards_the_next() -> None:
    ev = CanaryEvaluator(min_samples_per_step=200)
    ev.update(_scores(350, 1.0, 1.0))
    assert (ev.step, ev.verdict().evidence["step_samples"], ev.verdict().evidence["n"]) == (1, 0, 350)


def test_a_better_candidate_passes_only_once_the_last_step_has_its_minimum() -> None:
    ev = CanaryEvaluator(steps=(0.05, 0.25, 0.5), min_samples_per_step=200)
    for expected_step in (0, 1, 2):
        assert ev.step == expected_step
        ev.update(_scores(199, 1.0, 0.0))  # as clear as it gets: the interval is far above zero
        assert not ev.verdict().phase.final
        ev.update(_scores(1, 1.0, 0.0))
    verdict = ev.verdict()
    assert verdict.phase is Phase.PASSED
    assert (verdict.evidence["step"], verdict.evidence["share"], verdict.evidence["n"]) == (2, 0.5, 600)
    assert verdict.reason.endswith("above the required improvement of 0.000, at 50% of traffic")


@pytest.mark.parametrize("seed", range(10))
def test_a_clearly_better_candidate_passes_at_the_last_step(seed: int) -> None:
    verdict, fed = run_trial(CanaryEvaluator(), seed, 0.9, 0.7, batch=50)
    assert verdict.phase is Phase.PASSED, verdict
    assert verdict.evidence["step"] == 2
    assert fed <= 1000


@pytest.mark.parametrize("seed", range(10))
def test_a_big_regression_fails_at_once_at_the_first_step(seed: int) -> None:
    verdict, fed = run_trial(CanaryEvaluator(min_samples_per_step=200), seed, 0.3, 0.9, batch=10)
    assert verdict.phase is Phase.FAILED, verdict
    assert (verdict.evidence["step"], verdict.evidence["share"]) == (0, 0.05)
    assert 30 <= fed < 200
    assert verdict.reason.startswith("the canary is significantly worse at 5% of traffic: ")


def test_a_regression_at_a_later_step_fails_there() -> None:
    ev = CanaryEvaluator(min_samples_per_step=200)
    ev.update(_scores(200, 1.0, 1.0))
    ev.update(_scores(200, 1.0, 1.0))
    assert ev.step == 2
    rng = np.random.default_rng(0)
    while not ev.verdict().phase.final:
        ev.update(bernoulli_pair(rng, 0.2, 0.9, 20))
    assert ev.verdict().phase is Phase.FAILED
    assert ev.verdict().evidence["step"] == 2


def test_past_max_samples_is_inconclusive() -> None:
    ev = CanaryEvaluator(steps=(0.1, 0.2), min_samples_per_step=100, max_samples=1000)
    ev.update(_scores(100, 1.0, 1.0))
    ev.update(_scores(899, 1.0, 1.0))
    assert ev.verdict().phase is Phase.RUNNING
    ev.update(_scores(1, 1.0, 1.0))
    assert ev.verdict().phase is Phase.INCONCLUSIVE
    assert ev.verdict().reason.startswith("no conclusion within 1000 examples: ")


def test_a_concluded_canary_stays_concluded() -> None:
    ev = CanaryEvaluator(min_samples_per_step=100)
    ev.update(_scores(100, 0.0, 1.0))
    failed = ev.verdict()
    assert failed.phase is Phase.FAILED
    ev.update(_scores(500, 1.0, 0.0))
    assert (ev.verdict(), ev.step) == (failed, 0)


def test_reset_starts_again_at_the_first_step() -> None:
    ev = CanaryEvaluator(min_samples_per_step=100)
    ev.update(_scores(100, 1.0, 1.0))
    ev.update(_scores(150, 1.0, 1.0))
    assert ev.step == 2
    ev.reset()
    assert _where(ev) == (0, 0.05, 0, Phase.PENDING)
    assert ev.verdict().evidence["n"] == 0


KEYS = [f"user-{i}" for i in range(10_000)]


def test_bucket_is_stable_across_processes_and_seeded() -> None:
    # Pinned values: Python's salted hash() would change them from one process to the next.
    assert canary_bucket("user-42", 7) == 0.18344684386402133
    assert canary_bucket("order-1", 123) == 0.22544043636093702
    assert canary_bucket("user-42", 8) != canary_bucket("user-42", 7)
    buckets = [canary_bucket(k, 7) for k in KEYS]
    assert all(0.0 <= b < 1.0 for b in buckets)


def test_raising_the_share_keeps_every_key_already_in_the_canary() -> None:
    in_at = {share: {k for k in KEYS if canary_bucket(k, seed=11) < share} for share in (0.05, 0.25, 0.5)}
    assert in_at[0.05] <= in_at[0.25] <= in_at[0.5]
    for share, keys in in_at.items():
        assert abs(len(keys) / len(KEYS) - share) < 0.01


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"steps": ()}, "steps"),
        ({"steps": (0.0, 0.5)}, "steps"),
        ({"steps": (0.5, 1.5)}, "steps"),
        ({"steps": (0.25, 0.25, 0.5)}, "steps"),
        ({"steps": (0.5, 0.25)}, "steps"),
        ({"min_samples_per_step": 0}, "min_samples_per_step"),
        ({"alpha": 0.0}, "alpha"),
        ({"min_improvement": -0.01}, "min_improvement"),
        ({"max_samples": 500}, "max_samples"),  # three steps of 200 cannot fit
        ({"n_star": 0}, "n_star"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CanaryEvaluator(**kwargs)


def test_a_full_share_is_a_valid_last_step() -> None:
    ev = CanaryEvaluator(steps=(0.5, 1.0), min_samples_per_step=10)
    ev.update(_scores(10, 1.0, 1.0))
    assert ev.share == 1.0
