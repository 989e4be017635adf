"""The golden set: no promotion may regress on it. A file's (`GoldenSet`), or the trusted history
(`promotion.golden_reservoir`: a reservoir of the labelled stream, frozen at each promotion).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from dataflows.config import GoldenSet
from dataflows.train.state import GroupRuntime
from dataflows.train.trials import CHAMPION_SLOT
from evaluators import GoldenEvaluator, Paired, Verdict
from learners import Learner

__all__ = ["GOLDEN_MIN_SIZE", "check_golden", "correct", "golden_set_of", "prefixed"]

GOLDEN_MIN_SIZE = 50  # a golden set smaller than this checks nothing: promotions wait


def golden_set_of(rt: GroupRuntime) -> tuple[np.ndarray, np.ndarray] | None:
    """The golden set to check a promotion against: the file's, or the trusted history (the
    reservoir as frozen at the last promotion; all of it before the first), or None."""
    state = rt.state
    golden: GoldenSet | None = rt.ctx.config.golden
    if golden is not None:
        return golden.x, golden.y
    if state.reservoir is None:
        return None
    if state.trusted is not None and len(state.trusted[1]) >= GOLDEN_MIN_SIZE:
        return state.trusted
    return state.reservoir.arrays()


def check_golden(rt: GroupRuntime, candidate: Learner, x: np.ndarray, y: np.ndarray) -> Verdict:
    """The candidate against the champion on the golden set."""
    evaluator = GoldenEvaluator(tolerance=rt.ctx.config.gate.golden_tolerance, min_size=GOLDEN_MIN_SIZE)
    champion = rt.lanes[CHAMPION_SLOT].learner
    evaluator.update(Paired(candidate=correct(candidate, x, y), champion=correct(champion, x, y)))
    return evaluator.verdict()


def correct(learner: Learner, x: np.ndarray, y: np.ndarray) -> npt.NDArray[np.float64]:
    """1.0 where ``learner`` predicts ``y``, 0.0 elsewhere."""
    try:
        predicted = np.asarray(learner.predict_proba(x), dtype=np.float64).argmax(axis=1)
    except Exception:  # a model that cannot predict is wrong everywhere
        return np.zeros(len(y))
    return np.asarray(predicted == y, dtype=np.float64)


def prefixed(prefix: str, verdict: Verdict) -> dict[str, Any]:
    """A verdict's evidence and phase, as part of another decision's evidence."""
    return {f"{prefix}_{k}": v for k, v in verdict.evidence.items()} | {f"{prefix}_phase": verdict.phase.value}
