"""Trials (`dataflows.train.trials`), pure: evidence paired per job, results of versions that left
their slot dropped, a canary's evidence only what it served; and the actions' precedence
(`dataflows.train.lifecycle.next_actions`)."""

from __future__ import annotations

import numpy as np
import pytest

from dataflows.config import CandidateSpec
from dataflows.lanes import LaneResult
from dataflows.serve import CANARY, CHAMPION
from dataflows.train.lifecycle import next_actions
from dataflows.train.trials import STANDBY_SLOT, PairingBuffer, Trial, canary_part, canary_share
from evaluators import CanaryEvaluator, Paired, Phase, ProbationEvaluator, ShadowEvaluator, Verdict
from learners import LearnerSpec

# -- pairing and actions, pure ------------------------------------------------------------------


def _result(lane: str, version: str, seq: int, correct: list[float], routes: list[int] | None = None) -> LaneResult:
    c = np.array(correct)
    r = np.array(routes if routes is not None else [CHAMPION] * len(correct), dtype=np.int8)
    return LaneResult(lane, version, seq, c, c.copy(), r)


def test_pairing_pairs_each_candidate_with_the_champion_on_the_same_job() -> None:
    buffer = PairingBuffer()
    buffer.add(_result("fork", "v2", 1, [1, 1, 0]))
    assert buffer.pairs({"champion": "v1", "fork": "v2"}, oldest_kept=0) == []  # its counterpart is not in yet
    buffer.add(_result("champion", "v1", 1, [0, 1, 0]))
    buffer.add(_result("standby", "v0", 1, [1, 0, 0]))
    pairs = buffer.pairs({"champion": "v1", "fork": "v2", "standby": "v0"}, oldest_kept=0)
    got = {slot: (p.candidate.tolist(), p.champion.tolist()) for slot, p, _ in pairs}
    assert got == {
        "fork": ([1, 1, 0], [0, 1, 0]),
        "standby": ([0, 1, 0], [1, 0, 0]),  # the champion is the one on trial against its predecessor
    }
    assert buffer.pairs({"champion": "v1", "fork": "v2", "standby": "v0"}, oldest_kept=0) == []  # used once


def test_pairing_drops_results_of_versions_that_no_longer_hold_their_slot() -> None:
    buffer = PairingBuffer()
    buffer.add(_result("champion", "v1", 1, [1.0]))
    buffer.add(_result("fork", "v2", 1, [1.0]))
    buffer.add(_result("champion", "v1", 2, [1.0]))
    buffer.add(_result("fork", "v3", 2, [0.0]))
    pairs = buffer.pairs({"champion": "v1", "fork": "v3"}, oldest_kept=0)
    assert [(slot, p.candidate.tolist()) for slot, p, _ in pairs] == [("fork", [0.0])]
    # against a champion that no longer serves, nothing is evidence
    buffer.add(_result("champion", "v1", 3, [1.0]))
    buffer.add(_result("fork", "v3", 3, [1.0]))
    assert buffer.pairs({"champion": "v9", "fork": "v3"}, oldest_kept=0) == []
    assert 3 not in buffer.pending


def test_pairing_forgets_jobs_older_than_it_keeps() -> None:
    buffer = PairingBuffer()
    buffer.add(_result("fork", "v2", 1, [1.0]))
    buffer.add(_result("fork", "v2", 5, [1.0]))
    buffer.pairs({"champion": "v1", "fork": "v2"}, oldest_kept=3)
    assert list(buffer.pending) == [5]


def test_a_skipped_result_is_not_evidence() -> None:
    buffer = PairingBuffer()
    buffer.add(_result("champion", "v1", 1, [1.0, 1.0]))
    buffer.add(LaneResult("fork", "v2", 1, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int8), skipped=True))
    assert buffer.pairs({"champion": "v1", "fork": "v2"}, oldest_kept=0) == []


def test_canary_evidence_is_the_examples_the_canary_served() -> None:
    paired = Paired(candidate=np.array([1.0, 0.0, 1.0, 1.0]), champion=np.array([0.0, 0.0, 1.0, 0.0]))
    part = canary_part(paired, np.array([CANARY, CHAMPION, CHAMPION, CANARY], dtype=np.int8))
    assert (part.candidate.tolist(), part.champion.tolist()) == ([1.0, 1.0], [0.0, 0.0])


def _trial(phase: Phase | None, kind: str = "shadow") -> Trial:
    trial = Trial(ShadowEvaluator(), kind)
    trial.verdict = None if phase is None else Verdict(phase, f"{phase.value} for the test")
    return trial


def test_a_failing_champion_on_probation_is_rolled_back_before_anything_else() -> None:
    actions = next_actions({"fork": _trial(Phase.PASSED), STANDBY_SLOT: _trial(Phase.FAILED, "probation")})
    assert [(a.kind, a.slot) for a in actions] == [("rollback", STANDBY_SLOT)]


def test_only_the_first_candidate_that_passed_is_promoted_and_the_others_are_judged() -> None:
    trials = {
        STANDBY_SLOT: _trial(Phase.PASSED, "probation"),
        "a": _trial(Phase.PASSED),
        "b": _trial(Phase.PASSED),
        "c": _trial(Phase.FAILED),
        "d": _trial(Phase.ERROR),
        "e": _trial(Phase.INCONCLUSIVE),
        "f": _trial(Phase.RUNNING),
        "g": _trial(None),
    }
    actions = next_actions(trials)
    assert [(a.kind, a.slot) for a in actions] == [
        ("retire_standby", STANDBY_SLOT),
        ("refuse", "c"),
        ("refuse", "d"),
        ("new_trial", "e"),
        ("promote", "a"),  # last: it starts every other trial over
    ]


def test_canary_share_follows_the_trial_and_is_zero_once_it_concluded() -> None:
    trial = Trial(CanaryEvaluator(steps=(0.1, 0.5), min_samples_per_step=10), "canary")
    assert canary_share(trial) == 0.1
    trial.evaluator.update(Paired(candidate=np.ones(10), champion=np.ones(10)))
    assert canary_share(trial) == 0.5
    trial.phase = Phase.FAILED
    assert canary_share(trial) == 0.0
    assert canary_share(Trial(ProbationEvaluator(), "probation")) == 0.0


def test_refresh_is_for_forks_only() -> None:
    with pytest.raises(ValueError, match="for forks"):
        CandidateSpec("alt", LearnerSpec("river-logreg"), gate="refresh")
