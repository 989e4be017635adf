"""Trials (the gate): each slot's trial, and the lanes' results paired into evidence for it.

Every lane scores the same jobs; a candidate's evidence is its per-example scores paired with
the champion's on the same examples (a canary's: only the examples the canary served). The
standby (the previous champion, on probation after a promotion) is paired the other way round:
the champion is the one on trial. Results made by a version that no longer holds its slot, or
against a champion that no longer serves, are not evidence for the current trial.

`new_trial` and `probation` build a slot's trial from the configuration; `is_live_fork` says which
candidates learn on through a refusal. What the trials' verdicts ask for is decided, and done, by
`dataflows.train.lifecycle` (`next_actions`, `carry_out`).

`Trial` and `PairingBuffer` are pickled in recovery snapshots under their old name
(``dataflows.gate``, which re-exports them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dataflows.config import CandidateSpec, FlowConfig, GateSpec
from dataflows.jobs import LaneResult
from dataflows.serve import CANARY
from evaluators import (
    FAIL_FLOOR,
    CanaryEvaluator,
    Evaluator,
    Paired,
    Phase,
    ProbationEvaluator,
    RefreshEvaluator,
    ShadowEvaluator,
    Verdict,
)

__all__ = [
    "CHAMPION_SLOT",
    "RESTART_MIN_SAMPLES",
    "RESTART_SLOT",
    "STANDBY_SLOT",
    "PairingBuffer",
    "Trial",
    "canary_part",
    "canary_share",
    "is_live_fork",
    "new_trial",
    "probation",
]

CHAMPION_SLOT = "champion"
STANDBY_SLOT = "standby"
RESTART_SLOT = "restart"  # an untrained model started after a drop in the champion's accuracy
RESTART_MIN_SAMPLES = 100  # paired examples before a restart model may replace the champion


@dataclass
class Trial:
    """A slot's evaluator and the phase it last reported (a change is published)."""

    evaluator: Evaluator
    kind: str  # shadow, canary or probation
    phase: Phase = Phase.PENDING
    verdict: Verdict | None = None
    wait: int = 0  # labelled examples to let pass before this trial takes evidence (after a refusal)


@dataclass
class PairingBuffer:
    """Lane results waiting for their counterpart, by job sequence number."""

    pending: dict[int, dict[str, LaneResult]] = field(default_factory=dict)

    def add(self, result: LaneResult) -> None:
        self.pending.setdefault(result.seq, {})[result.lane] = result

    def pairs(self, versions: dict[str, str], oldest_kept: int) -> list[tuple[str, Paired, np.ndarray]]:
        """Evidence ready now: (slot, paired scores, routes that served them) in job order. ``versions`` are the current
        version of every slot; results of other versions are dropped. Entries older than
        ``oldest_kept`` are forgotten (their counterpart was skipped or never comes)."""
        out: list[tuple[str, Paired, np.ndarray]] = []
        champion_version = versions.get(CHAMPION_SLOT)
        for seq in sorted(self.pending):
            results = self.pending[seq]
            base = results.get(CHAMPION_SLOT)
            if seq < oldest_kept:
                del self.pending[seq]
                continue
            if base is None:
                continue
            if base.version != champion_version or base.skipped:
                del self.pending[seq]
                continue
            for slot in [s for s in results if s != CHAMPION_SLOT]:
                other = results.pop(slot)
                if other.skipped or other.version != versions.get(slot) or len(other.correct) != len(base.correct):
                    continue
                if slot == STANDBY_SLOT:  # the champion is on trial against its predecessor
                    out.append((slot, Paired(candidate=base.correct, champion=other.correct), base.routes))
                else:
                    out.append((slot, Paired(candidate=other.correct, champion=base.correct), base.routes))
        return out

    def clear(self) -> None:
        self.pending.clear()


def canary_part(paired: Paired, routes: np.ndarray) -> Paired:
    """The examples the canary served."""
    mask = routes == CANARY
    return Paired(candidate=paired.candidate[mask], champion=paired.champion[mask])


def canary_share(trial: Trial) -> float:
    """The share of keys a canary trial asks for now (0 once it has concluded, and while a refused
    candidate waits for its next trial)."""
    evaluator = trial.evaluator
    if not isinstance(evaluator, CanaryEvaluator) or trial.phase.final or trial.wait > 0:
        return 0.0
    return float(evaluator.share)


def new_trial(config: FlowConfig, spec: CandidateSpec, *, untrained_champion: bool = False) -> Trial:
    """A candidate's trial. Against an untrained first champion, which serves nothing worth keeping, a
    refresh fork needs only the evidence any verdict needs (`FAIL_FLOOR` examples), not
    ``refresh_samples``: the cold start is as short as the label delay allows."""
    g = config.gate
    evaluator: Evaluator
    if spec.name == RESTART_SLOT:
        # It must beat the champion; its always-valid interval may be read early (`train/restart.py`).
        evaluator = ShadowEvaluator(
            alpha=g.alpha, min_samples=min(g.min_samples, RESTART_MIN_SAMPLES), min_improvement=g.min_improvement,
            max_samples=g.max_samples,
        )  # fmt: skip
        return Trial(evaluator, "restart")
    if spec.gate == "canary":
        evaluator = CanaryEvaluator(
            steps=g.canary_steps, min_samples_per_step=g.canary_min_samples, alpha=g.alpha,
            min_improvement=g.min_improvement, max_samples=g.max_samples,
        )  # fmt: skip
    elif spec.gate == "refresh":
        samples = min(g.refresh_samples, FAIL_FLOOR) if untrained_champion else g.refresh_samples
        # With live refresh the fork's state serves already: no early promotion (`RefreshEvaluator`).
        evaluator = RefreshEvaluator(
            alpha=g.alpha, min_samples=samples, margin=g.refresh_margin, early=not g.live_refresh or untrained_champion
        )
    else:
        evaluator = ShadowEvaluator(
            alpha=g.alpha, min_samples=g.min_samples, min_improvement=g.min_improvement, max_samples=g.max_samples
        )
    return Trial(evaluator, spec.gate)


def probation(config: FlowConfig, *, refresh: bool = False) -> Trial:
    """A new champion's probation against the standby. After a refresh promotion it lasts at most
    ``refresh_samples``: the next refresh comes after that many examples, and a champion replaced
    before its probation ends never becomes the standby. With a longer probation the standby
    would stay the version before the first promotion of the chain, older with every refresh, and
    a rollback would restore it."""
    g = config.gate
    samples = min(g.probation_samples, g.refresh_samples) if refresh else g.probation_samples
    evaluator = ProbationEvaluator(
        margin=g.rollback_margin, alpha=g.alpha, min_samples=min(g.min_samples, samples), samples=samples
    )
    return Trial(evaluator, "probation")


def is_live_fork(gate: GateSpec, spec: CandidateSpec | None) -> bool:
    """Live refresh: whether a slot of ``spec`` is a refresh fork, whose state serves between
    promotions. Such a fork is the learner itself, learning on: a refusal on live evidence only keeps
    it from serving, and it learns on as a new version instead of starting again from the frozen
    champion (`dataflows.train.lifecycle.refuse`), as the same learner alone would. Restarting it
    from the champion made it another learner from then on, by luck better or worse: an adaptive
    tree on STAGGER went from +7 to -13 points against the tree alone in its worst window from run
    to run (`bench/results/HISTORY.md`). It is not judged before its wait is over, but its new trial
    gathers evidence from the refusal on, and that evidence decides whether it may serve meanwhile
    (`dataflows.train.live.sync`). Otherwise the frozen champion would serve through the whole
    wait: thousands of examples, on an abrupt change the old concept."""
    return gate.live_refresh and spec is not None and spec.gate == "refresh"


# A recovery snapshot (pickle) names each class by its module and name: these keep the name they
# had before this module existed (`dataflows.gate` re-exports them), so that snapshots name the same
# classes before and after the move, and each release reads the other's.
for _pickled in (Trial, PairingBuffer):
    _pickled.__module__ = "dataflows.gate"
