"""Seeded simulated trials for the evaluator tests: Bernoulli correctness of two models."""

from __future__ import annotations

import numpy as np

from evaluators import Evaluator, Paired, Verdict


def bernoulli_pair(rng: np.random.Generator, p_candidate: float, p_champion: float, n: int) -> Paired:
    """Per-example correctness (1.0/0.0) of two models with these accuracies, drawn independently."""
    return Paired(
        (rng.random(n) < p_candidate).astype(np.float64),
        (rng.random(n) < p_champion).astype(np.float64),
    )


def run_trial(
    evaluator: Evaluator, seed: int, p_candidate: float, p_champion: float, batch: int = 50, limit: int = 100_000
) -> tuple[Verdict, int]:
    """Feed batches until the verdict is final; the verdict and the examples fed. Fails loudly if
    ``limit`` examples pass without a conclusion."""
    rng = np.random.default_rng(seed)
    fed = 0
    while not evaluator.verdict().phase.final:
        assert fed < limit, f"no conclusion after {fed} examples: {evaluator.verdict()}"
        evaluator.update(bernoulli_pair(rng, p_candidate, p_champion, batch))
        fed += batch
    return evaluator.verdict(), fed
