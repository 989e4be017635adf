"""The gate: turns the lanes' results into evidence for each trial, and verdicts into actions.

Every lane scores the same jobs; a candidate's evidence is its per-example scores paired with
the champion's on the same examples (a canary's: only the examples the canary served). The
standby (the previous champion, on probation after a promotion) is paired the other way round:
the champion is the one on trial. Results made by a version that no longer holds its slot, or
against a champion that no longer serves, are not evidence for the current trial.

`next_actions` is pure: from the slots' verdicts to what the promoter should do. The train step
carries the actions out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dataflows.lanes import LaneResult
from dataflows.serve import CANARY
from evaluators import CanaryEvaluator, Evaluator, Paired, Phase, Verdict

__all__ = ["Action", "PairingBuffer", "Trial", "next_actions"]

CHAMPION_SLOT = "champion"
STANDBY_SLOT = "standby"
RESTART_SLOT = "restart"  # an untrained model started after a drop in the champion's accuracy


@dataclass
class Trial:
    """A slot's evaluator and the phase it last reported (a change is published)."""

    evaluator: Evaluator
    kind: str  # shadow, canary or probation
    phase: Phase = Phase.PENDING
    verdict: Verdict | None = None
    wait: int = 0  # labelled examples to let pass before this trial takes evidence (after a refusal)


@dataclass(frozen=True)
class Action:
    """What the gate asks for: ``promote``, ``refuse``, ``new_trial``, ``rollback``, ``retire_standby``."""

    kind: str
    slot: str
    verdict: Verdict


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


def next_actions(trials: dict[str, Trial]) -> list[Action]:
    """From the trials' verdicts to actions: at most one promotion or rollback at a time.

    A failing champion on probation is rolled back before anything else; a failed candidate is
    refused; an inconclusive trial starts over; and then a candidate that passed is promoted (the
    first in slot order, if several passed at once).
    """
    actions: list[Action] = []
    standby = trials.get(STANDBY_SLOT)
    if standby is not None and standby.verdict is not None:
        if standby.verdict.phase is Phase.FAILED:
            return [Action("rollback", STANDBY_SLOT, standby.verdict)]
        if standby.verdict.phase is Phase.PASSED:
            actions.append(Action("retire_standby", STANDBY_SLOT, standby.verdict))
    promotion: Action | None = None
    for slot, trial in trials.items():
        if slot == STANDBY_SLOT or trial.verdict is None:
            continue
        phase = trial.verdict.phase
        if phase is Phase.PASSED and promotion is None:
            promotion = Action("promote", slot, trial.verdict)
        elif phase in (Phase.FAILED, Phase.ERROR):
            actions.append(Action("refuse", slot, trial.verdict))
        elif phase is Phase.INCONCLUSIVE:
            actions.append(Action("new_trial", slot, trial.verdict))
    # The promotion last: it starts every other trial over, and a candidate that failed its own
    # trial is refused whatever else happens at the same moment.
    return actions + ([promotion] if promotion is not None else [])


def canary_share(trial: Trial) -> float:
    """The share of keys a canary trial asks for now (0 once it has concluded, and while a refused
    candidate waits for its next trial)."""
    evaluator = trial.evaluator
    if not isinstance(evaluator, CanaryEvaluator) or trial.phase.final or trial.wait > 0:
        return 0.0
    return float(evaluator.share)
