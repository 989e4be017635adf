"""Learners: one small interface over River, PyTorch and MOA models that keep learning from a stream.

A learner predicts class probabilities for a batch, learns from a labelled batch, clones itself
(a candidate is a clone of the champion) and saves/loads its state. Labels are class *indices*
into the ``classes`` the learner was built with; the dataflow maps wire labels to indices.

PyTorch is imported only when a torch learner is built or `TorchMLP` is first named: a daemon of
River models, and every process started for one, starts without it (about 1.5 s of imports).
Likewise CapyMOA, and the JVM it starts, only when a MOA learner is built (`learners.moa`).
"""

from typing import TYPE_CHECKING, Any

from learners.base import Artifact, Learner, LearnerError
from learners.factory import LEARNERS, LearnerSpec, build_learner
from learners.moa import MoaLearner
from learners.river_learner import RiverLearner

if TYPE_CHECKING:
    from learners.torch_learner import TorchMLP


def __getattr__(name: str) -> Any:
    if name == "TorchMLP":
        from learners.torch_learner import TorchMLP

        return TorchMLP
    msg = f"module 'learners' has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "LEARNERS",
    "Artifact",
    "Learner",
    "LearnerError",
    "LearnerSpec",
    "MoaLearner",
    "RiverLearner",
    "TorchMLP",
    "build_learner",
]
