"""What every evaluator shares: the phases of a verdict, the verdict itself, and the contract.

An evaluator observes outcomes and reports; it never acts (only the promoter changes which model
serves). Vocabulary from Argo Rollouts' analysis runs: *pending* (not enough data yet), *running*
(measuring, no conclusion), *passed*, *failed* (measured and bad), *inconclusive* (measured, no
conclusion within the budget), *error* (could not measure — not the same as measured and bad).
No data is never success.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Evaluator", "Evidence", "Paired", "Phase", "Verdict"]

Evidence = Mapping[str, float | int | str | bool | None]


class Phase(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"

    @property
    def final(self) -> bool:
        """A concluded trial: the promoter may act on it."""
        return self in (Phase.PASSED, Phase.FAILED, Phase.INCONCLUSIVE, Phase.ERROR)


@dataclass(frozen=True)
class Verdict:
    """A phase, a reason a person can read, and the numbers behind it."""

    phase: Phase
    reason: str
    evidence: Evidence = field(default_factory=dict)


@dataclass(frozen=True)
class Paired:
    """Per-example scores of a candidate and of the champion on the *same* labelled examples,
    each made before either model learned the example. Higher is better: 1.0/0.0 for a right/wrong
    class (accuracy), or minus the log loss.
    """

    candidate: npt.NDArray[np.float64]
    champion: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        if self.candidate.shape != self.champion.shape or self.candidate.ndim != 1:
            msg = (
                f"paired scores need two 1-D arrays of one length, got {self.candidate.shape} and {self.champion.shape}"
            )
            raise ValueError(msg)

    def __len__(self) -> int:
        return len(self.candidate)


@runtime_checkable
class Evaluator(Protocol):
    """Takes outcomes, returns a verdict. Pure: no I/O, no clock or randomness of its own.

    Picklable (evaluators live in Bytewax snapshots); ``reset`` starts a new trial with the same
    configuration, so one evaluator object can judge candidate after candidate.
    """

    def update(self, outcomes: Paired) -> None: ...

    def verdict(self) -> Verdict: ...

    def reset(self) -> None: ...
