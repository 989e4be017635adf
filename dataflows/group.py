"""Format 1 of a group's recovery state, kept only so that old snapshots can be read and migrated.

Before the champion/candidate lifecycle, one model served and learned at once; Bytewax pickled its
`GroupState` under this module's name. `dataflows.migrate` turns such a snapshot into today's
state. Nothing else uses these classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dataflows.labels import LabelJoin
from evaluators import PrequentialScore
from learners import Learner

__all__ = ["GroupState", "ModelSlot"]


@dataclass
class ModelSlot:
    name: str
    learner: Learner
    score: PrequentialScore
    version: int = 0
    lineage: dict[str, list[int]] = field(default_factory=dict)  # "topic/partition" -> [first, last]


@dataclass
class GroupState:
    name: str
    champion: str
    models: dict[str, ModelSlot]
    join: LabelJoin
    features: list[str]
    classes: list[int | str]
    batches: int = 0
    format: int = 1
