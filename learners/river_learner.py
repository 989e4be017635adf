"""River classifiers behind the `Learner` interface.

River learns one event at a time; where every step of a model supports River's mini-batch methods
(``learn_many``/``predict_proba_many``, e.g. ``StandardScaler | LogisticRegression``) a micro-batch
goes through them in one call, otherwise the batch is replayed event by event.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from river import base as river_base
from river import compose, linear_model, optim, preprocessing, tree

from learners.base import Artifact, FloatArray, IntArray, LearnerError, sha256_of, verified_bytes

__all__ = ["RiverLearner", "hoeffding_tree", "logistic_regression"]


class RiverLearner:
    """Wraps a River classifier; labels are class indices ``0..n_classes-1``.

    >>> import numpy as np
    >>> learner = logistic_regression(n_features=2, n_classes=2)
    >>> learner.learn(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([1, 0]))
    >>> learner.predict_proba(np.array([[0.0, 1.0]])).shape
    (1, 2)
    """

    def __init__(
        self,
        model: Any,
        n_features: int,
        n_classes: int,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(model, river_base.Classifier):
            msg = f"RiverLearner needs a river Classifier, got {type(model).__name__}"
            raise LearnerError(msg)
        self.model: Any = model  # a river Classifier; River's mini-batch methods are not on the base type
        self.n_features = n_features
        self.n_classes = n_classes
        self.feature_names = list(feature_names or [f"x{i}" for i in range(n_features)])
        self._batched = _supports_many(model)

    def predict_proba(self, x: FloatArray) -> FloatArray:
        out = np.zeros((len(x), self.n_classes))
        if len(x) == 0:
            return out
        if self._batched:
            frame = self.model.predict_proba_many(self._frame(x))
            for col in frame.columns:
                idx = int(col)
                if 0 <= idx < self.n_classes:
                    out[:, idx] = frame[col].to_numpy(dtype=float)
        else:
            for row, features in enumerate(self._dicts(x)):
                for label, p in self.model.predict_proba_one(features).items():
                    idx = int(label)
                    if 0 <= idx < self.n_classes:
                        out[row, idx] = p
        totals = out.sum(axis=1, keepdims=True)
        unseen = totals[:, 0] <= 0
        out[unseen] = 1.0 / self.n_classes  # no opinion yet: uniform
        out[~unseen] /= totals[~unseen]
        return out

    def learn(self, x: FloatArray, y: IntArray) -> None:
        if len(x) == 0:
            return
        if self._batched:
            self.model.learn_many(self._frame(x), pd.Series(y.astype(int)))
            return
        for features, label in zip(self._dicts(x), y.tolist(), strict=True):
            self.model.learn_one(features, int(label))

    def clone(self, *, include_state: bool = False) -> Self:
        model = copy.deepcopy(self.model) if include_state else self.model.clone()
        return type(self)(model, self.n_features, self.n_classes, self.feature_names)

    def save(self, directory: Path) -> Artifact:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "river-model.pkl"
        state = {"model": self.model, "n_features": self.n_features, "n_classes": self.n_classes,
                 "feature_names": self.feature_names}  # fmt: skip
        path.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        return Artifact(path=path, sha256=sha256_of(path))

    @classmethod
    def load(cls, artifact: Artifact) -> Self:
        # River models can only be pickled. This reads Headwater's own store and only after the
        # bytes match the digest the registry recorded when it saved them.
        state: dict[str, Any] = pickle.loads(verified_bytes(artifact))  # noqa: S301, TID251
        return cls(state["model"], state["n_features"], state["n_classes"], state["feature_names"])

    def _frame(self, x: FloatArray) -> pd.DataFrame:
        return pd.DataFrame(x, columns=self.feature_names)

    def _dicts(self, x: FloatArray) -> list[dict[str, float]]:
        names = self.feature_names
        return [dict(zip(names, row, strict=True)) for row in x.tolist()]


def _supports_many(model: river_base.Classifier) -> bool:
    steps = list(model.steps.values()) if isinstance(model, compose.Pipeline) else [model]
    needs = ("learn_many",)
    last_needs = ("learn_many", "predict_proba_many")
    return all(all(hasattr(s, n) for n in needs) for s in steps[:-1]) and all(hasattr(steps[-1], n) for n in last_needs)


def logistic_regression(
    n_features: int,
    n_classes: int,
    feature_names: Sequence[str] | None = None,
    lr: float = 0.5,
    l2: float = 0.0,
    seed: int = 0,
) -> RiverLearner:
    """Standard-scaled logistic regression (binary), learning with mini-batch SGD."""
    if n_classes != 2:
        msg = f"river-logreg is a binary classifier; the schema declares {n_classes} classes"
        raise LearnerError(msg)
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(lr), intercept_lr=lr, l2=l2
    )
    return RiverLearner(model, n_features, n_classes, feature_names)


def hoeffding_tree(
    n_features: int,
    n_classes: int,
    feature_names: Sequence[str] | None = None,
    grace_period: int = 200,
    seed: int = 0,
) -> RiverLearner:
    """Hoeffding Adaptive Tree: replaces branches that stop working after a drift."""
    model = tree.HoeffdingAdaptiveTreeClassifier(grace_period=grace_period, seed=seed)
    return RiverLearner(model, n_features, n_classes, feature_names)
