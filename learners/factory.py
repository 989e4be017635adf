"""Build a learner from its name in the config: a built-in, or a user factory by import path."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from river import base as river_base

from learners import moa
from learners.base import Categories, Learner, LearnerError, import_path
from learners.river_learner import RiverLearner, hoeffding_tree, logistic_regression

__all__ = ["LEARNERS", "LearnerSpec", "build_learner"]


def torch_mlp(**params: Any) -> Learner:
    """`learners.torch_learner.TorchMLP`, with PyTorch imported only now (the ``torch`` extra)."""
    try:
        from learners.torch_learner import TorchMLP
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        msg = ("torch-mlp needs PyTorch, which this installation leaves out: install the torch extra "
               "(pip install 'headwater[torch]'), or use the -torch image")  # fmt: skip
        raise LearnerError(msg) from None
    return TorchMLP(**params)


LEARNERS: Mapping[str, Callable[..., Learner]] = {
    "river-logreg": logistic_regression,
    "river-hoeffding": hoeffding_tree,
    "torch-mlp": torch_mlp,
    "moa-arf": moa.adaptive_random_forest,
    "moa-srp": moa.streaming_random_patches,
    "moa-levbag": moa.leveraging_bagging,
    "moa-hat": moa.hoeffding_adaptive_tree,
    "moa-efdt": moa.efdt,
}


@dataclass(frozen=True)
class LearnerSpec:
    """A learner's name and keyword parameters, as written in the config.

    ``name`` is a built-in (see `LEARNERS`) or ``"package.module:callable"``. A user callable is
    called with ``n_features``, ``n_classes``, ``feature_names``, ``seed`` and the ``params``, and
    returns a `Learner`, a River classifier (wrapped in `RiverLearner`) or a CapyMOA classifier built
    on a schema (wrapped in `learners.moa.MoaLearner`). The ``moa-*`` built-ins need the ``moa``
    extra and a Java runtime; the JVM starts when the first one is built.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0

    def described(self) -> dict[str, Any]:
        """As a model version's config records what it was built from."""
        return {"learner": self.name, "params": dict(self.params), "seed": self.seed}


def build_learner(
    spec: LearnerSpec,
    *,
    n_features: int,
    n_classes: int,
    feature_names: Sequence[str],
    categories: Categories | None = None,
) -> Learner:
    """The learner ``spec`` names, for these features and classes. ``categories`` (the schema's
    categorical features and their values; the rows carry each one's position in its list) reaches
    the built-ins always, and a user's factory only when there are some, as a ``categories``
    keyword argument."""
    factory = _resolve(spec.name)
    cats = {name: list(values) for name, values in (categories or {}).items()}
    extra: dict[str, Any] = {"categories": cats} if cats or spec.name in LEARNERS else {}
    try:
        made = factory(
            n_features=n_features, n_classes=n_classes, feature_names=list(feature_names), seed=spec.seed,
            **extra, **dict(spec.params),
        )  # fmt: skip
    except TypeError as exc:
        msg = f"learner {spec.name!r} rejected its parameters {dict(spec.params)}: {exc}"
        raise LearnerError(msg) from exc
    if isinstance(made, river_base.Classifier):
        return RiverLearner(made, n_features, n_classes, feature_names, cats)
    if moa.is_capymoa_classifier(made):
        return moa.MoaLearner(made.moa_learner, n_features, n_classes, feature_names, cats)
    if not isinstance(made, Learner):
        msg = f"learner factory {spec.name!r} returned {type(made).__name__}, which is not a Learner"
        raise LearnerError(msg)
    return made


def _resolve(name: str) -> Callable[..., Any]:
    if name in LEARNERS:
        return LEARNERS[name]
    try:
        target: Any = import_path(name)
    except ValueError:
        known = ", ".join(sorted(LEARNERS))
        msg = f"unknown learner {name!r}: use one of {known} or 'package.module:callable'"
        raise LearnerError(msg) from None
    except (ImportError, AttributeError) as exc:
        msg = f"learner factory {name!r} cannot be imported: {exc}"
        raise LearnerError(msg) from exc
    if not callable(target):
        msg = f"learner factory {name!r} is not callable"
        raise LearnerError(msg)
    return target  # type: ignore[no-any-return]
