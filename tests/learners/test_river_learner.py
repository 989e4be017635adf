"""RiverLearner's own choices: how a model with its state is copied."""

from __future__ import annotations

import numpy as np
from river import compose, linear_model

from learners import RiverLearner


def test_a_model_that_cannot_be_pickled_is_still_copied_with_its_state() -> None:
    # A user's pipeline with a lambda in it: the fast copy (a pickle round trip) cannot take it.
    model = compose.FuncTransformer(lambda x: {k: 2 * v for k, v in x.items()}) | linear_model.LogisticRegression()
    learner = RiverLearner(model, n_features=2, n_classes=2, feature_names=["a", "b"])
    x = np.array([[1.0, -1.0], [-1.0, 1.0]] * 20)
    y = np.array([1, 0] * 20, dtype=np.int64)
    learner.learn(x, y)
    copied = learner.clone(include_state=True)
    np.testing.assert_array_equal(copied.predict_proba(x), learner.predict_proba(x))
    learner.learn(x, 1 - y)  # the copy is independent: what the original learns does not reach it
    assert not np.array_equal(copied.predict_proba(x), learner.predict_proba(x))
