"""User learner factories, referred to by import path in the tests (``tests.learners.factories:...``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from river import naive_bayes

from learners.base import FloatArray, IntArray
from learners.river_learner import RiverLearner, logistic_regression


def gaussian_nb(
    n_features: int, n_classes: int, feature_names: Sequence[str], seed: int, **params: Any
) -> naive_bayes.GaussianNB:
    """Returns a bare River classifier: `build_learner` wraps it in a `RiverLearner`."""
    model: naive_bayes.GaussianNB = naive_bayes.GaussianNB(**params)
    return model


def capymoa_hoeffding_tree(n_features: int, n_classes: int, feature_names: Sequence[str], seed: int) -> Any:
    """Returns a bare CapyMOA classifier on its own schema: `build_learner` wraps it in a `MoaLearner`."""
    from capymoa.classifier import HoeffdingTree
    from capymoa.stream import Schema

    target = "label"
    schema = Schema.from_custom(
        [*feature_names, target], target=target, categories={target: [str(i) for i in range(n_classes)]}
    )
    return HoeffdingTree(schema=schema, random_seed=seed, grace_period=50)


def not_a_learner(n_features: int, n_classes: int, feature_names: Sequence[str], seed: int) -> dict[str, int]:
    return {"n_features": n_features}


def strict_params(n_features: int, n_classes: int, feature_names: Sequence[str], seed: int) -> None:
    """Accepts no extra parameters at all."""


NOT_CALLABLE = 42


class Inverted(RiverLearner):
    """Logistic regression taught the opposite of every label: a candidate that must never serve."""

    def learn(self, x: FloatArray, y: IntArray) -> None:
        super().learn(x, 1 - y)


def inverted_logreg(n_features: int, n_classes: int, feature_names: Sequence[str], seed: int) -> Inverted:
    base = logistic_regression(n_features, n_classes, feature_names)
    return Inverted(base.model, n_features, n_classes, feature_names)
