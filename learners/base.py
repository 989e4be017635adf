"""The learner contract shared by every model family."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


Categories = Mapping[str, Sequence[int | str]]  # categorical features and their values, as the schema names them


class LearnerError(Exception):
    """A learner was misconfigured, or an artifact could not be trusted or read."""


@dataclass(frozen=True)
class Artifact:
    """What `Learner.save` wrote: the file and its SHA-256, to be recorded by the registry."""

    path: Path
    sha256: str


@runtime_checkable
class Learner(Protocol):
    """A classifier that learns one micro-batch at a time.

    ``predict_proba`` never changes the model; ``learn`` returns None (mutating methods return
    nothing). ``clone()`` gives an untrained copy with the same configuration;
    ``clone(include_state=True)`` also copies what was learned.
    """

    n_features: int
    n_classes: int

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Class probabilities, shape ``(len(x), n_classes)``."""
        ...

    def learn(self, x: FloatArray, y: IntArray) -> None:
        """Learn from a labelled batch; ``y`` holds class indices."""
        ...

    def clone(self, *, include_state: bool = False) -> Self: ...

    def save(self, directory: Path) -> Artifact:
        """Write the learner's state under ``directory`` and say what was written."""
        ...

    @classmethod
    def load(cls, artifact: Artifact) -> Self:
        """Read back what ``save`` wrote, refusing a file whose digest differs."""
        ...


def import_path(path: str) -> object:
    """The object named ``"package.module:Qual.Name"``. Raises ValueError for a name of another
    shape, ImportError or AttributeError when there is no such object.

    >>> import_path("learners.base:Artifact").__name__
    'Artifact'
    """
    module_name, sep, qualname = path.partition(":")
    if not sep or not module_name or not qualname:
        msg = f"{path!r} is not 'package.module:name'"
        raise ValueError(msg)
    target: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def normalized(scores: FloatArray) -> FloatArray:
    """Rows of non-negative class scores as probabilities, in place; a row with no opinion yet (all
    zero) becomes uniform.

    >>> normalized(np.array([[2.0, 6.0], [0.0, 0.0]])).tolist()
    [[0.25, 0.75], [0.5, 0.5]]
    """
    totals = scores.sum(axis=1, keepdims=True)
    unseen = totals[:, 0] <= 0
    scores[unseen] = 1.0 / scores.shape[1]
    scores[~unseen] /= totals[~unseen]
    return scores


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_bytes(artifact: Artifact) -> bytes:
    """The artifact's bytes, if and only if they hash to the recorded digest."""
    data = artifact.path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != artifact.sha256:
        msg = f"{artifact.path}: digest {actual} does not match the recorded {artifact.sha256}; refusing to load"
        raise LearnerError(msg)
    return data
