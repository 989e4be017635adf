"""Categorical features, every built-in learner: a label that depends on a category in no order of
its codes is learned (a learner that took the codes for numbers could not), and a clone, a save and
load and a pickle keep knowing which features are categorical."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from learners import Learner, LearnerSpec, build_learner
from learners.base import FloatArray, IntArray

FEATURES = ["noise", "colour"]
COLOURS = ["red", "green", "blue", "cyan", "black", "white"]
CATEGORIES = {"colour": COLOURS}
POSITIVE = {0, 2, 4}  # red, blue, black: every other code, so no threshold on the code separates them
SPECS = [
    pytest.param(LearnerSpec("river-logreg", {"lr": 0.1}), id="river-logreg"),
    pytest.param(LearnerSpec("river-hoeffding", {"grace_period": 50}), id="river-hoeffding"),
    pytest.param(LearnerSpec("torch-mlp", {"device": "cpu", "hidden": [16], "lr": 1e-2}), id="torch-mlp"),
    pytest.param(LearnerSpec("moa-arf", {"ensemble_size": 3}), id="moa-arf"),
    pytest.param(LearnerSpec("moa-srp", {"ensemble_size": 3}), id="moa-srp"),
    pytest.param(LearnerSpec("moa-levbag", {"ensemble_size": 3}), id="moa-levbag"),
    pytest.param(LearnerSpec("moa-hat", {"grace_period": 50}), id="moa-hat"),
    pytest.param(LearnerSpec("moa-efdt", {"grace_period": 50}), id="moa-efdt"),
]


def _stream(seed: int, n: int) -> tuple[FloatArray, IntArray]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, len(COLOURS), n)
    x = np.column_stack([rng.normal(0, 1, n), codes.astype(np.float64)])
    y = np.isin(codes, list(POSITIVE)).astype(np.int64)
    return x, y


def _trained(spec: LearnerSpec) -> Learner:
    learner = build_learner(spec, n_features=2, n_classes=2, feature_names=FEATURES, categories=CATEGORIES)
    x, y = _stream(0, 3000)
    for start in range(0, len(y), 100):
        learner.learn(x[start : start + 100], y[start : start + 100])
    return learner


def _accuracy(learner: Learner, x: FloatArray, y: IntArray) -> float:
    return float((learner.predict_proba(x).argmax(axis=1) == y).mean())


@pytest.mark.parametrize("spec", SPECS)
def test_a_category_is_learned_by_its_values_not_its_code(spec: LearnerSpec) -> None:
    x, y = _stream(1, 600)
    assert _accuracy(_trained(spec), x, y) >= 0.95


def test_without_categories_a_linear_model_cannot_learn_it() -> None:
    """The check above could fail: the same stream, the codes taken for numbers."""
    learner = build_learner(LearnerSpec("river-logreg", {"lr": 0.1}), n_features=2, n_classes=2, feature_names=FEATURES)
    x, y = _stream(0, 3000)
    learner.learn(x, y)
    xt, yt = _stream(1, 600)
    assert _accuracy(learner, xt, yt) < 0.75


@pytest.mark.parametrize("spec", SPECS)
def test_copies_and_saved_models_keep_their_categories(spec: LearnerSpec, tmp_path: Path) -> None:
    learner = _trained(spec)
    x, _ = _stream(2, 200)
    expected = learner.predict_proba(x)
    loaded = type(learner).load(learner.save(tmp_path / "saved"))
    for other in (learner.clone(include_state=True), loaded, pickle.loads(pickle.dumps(learner))):
        np.testing.assert_allclose(other.predict_proba(x), expected, rtol=0, atol=1e-6)
    fresh = learner.clone()
    fresh.learn(*_stream(0, 3000))  # an untrained copy learns the category as well
    assert _accuracy(fresh, *_stream(1, 600)) >= 0.9
