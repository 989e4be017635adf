"""Learners: one small interface over River and PyTorch models that keep learning from a stream.

A learner predicts class probabilities for a batch, learns from a labelled batch, clones itself
(a candidate is a clone of the champion) and saves/loads its state. Labels are class *indices*
into the ``classes`` the learner was built with; the dataflow maps wire labels to indices.
"""

from learners.base import Artifact, Learner, LearnerError
from learners.factory import LEARNERS, LearnerSpec, build_learner
from learners.river_learner import RiverLearner
from learners.torch_learner import TorchMLP

__all__ = [
    "LEARNERS",
    "Artifact",
    "Learner",
    "LearnerError",
    "LearnerSpec",
    "RiverLearner",
    "TorchMLP",
    "build_learner",
]
