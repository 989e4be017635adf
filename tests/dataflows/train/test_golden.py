"""The golden set (`dataflows.train.golden`): it blocks a candidate that wins on a poisoned stream,
passes one that is better on it, and a set too small to judge holds promotions without repeating
its verdict."""

from __future__ import annotations

from pathlib import Path

from dataflows.config import GoldenSet
from tests.dataflows.helpers import (
    Stream,
    concept_poisoned,
    config,
    decisions,
    make_group,
    trained_learner,
    verdicts,
)
from tests.dataflows.train.support import number, run_until


def test_a_golden_set_blocks_a_candidate_that_wins_on_a_poisoned_stream(tmp_path: Path) -> None:
    """The stream's labels are flipped in a quarter of the plane, consistently: the fork learns the
    poison and beats the champion on the live (poisoned) labels, but regresses on the golden set,
    so it is refused, and the reason says so."""
    x, y = Stream(123).arrays(500)
    group = make_group(config(golden=GoldenSet(x, y)), tmp_path, champion=trained_learner())
    out, refuse = run_until(group, Stream(1, concept_poisoned), "refuse")

    assert refuse.version == "default/2"
    assert "passed its shadow trial but not the golden set" in refuse.reason
    assert "on the 500-example golden set" in refuse.reason
    assert refuse.evidence["golden_phase"] == "failed"
    assert number(refuse.evidence["golden_candidate_mean"]) < number(refuse.evidence["golden_champion_mean"]) - 0.02
    phases = [(v.evaluator, v.phase) for v in verdicts(out) if v.version == "default/2"]
    assert ("shadow", "passed") in phases and ("golden", "failed") in phases
    # The refusal, and the retirement (now on the topic too) of the successor frozen with it,
    # which never learned anything of its own: the fork starts again from the champion.
    assert [(d.action, d.version) for d in decisions(out)] == [("refuse", "default/2"), ("retire", "default/3")]
    assert decisions(out)[1].reason == "default/2 was refused"
    assert group.table.champion.version == "default/1"
    assert group.deps.registry.version("default/2").status == "retired"
    assert group.deps.registry.version("default/3").status == "retired"


def test_a_golden_set_passes_a_candidate_that_is_better_on_it(tmp_path: Path) -> None:
    x, y = Stream(123).arrays(500)
    group = make_group(config(golden=GoldenSet(x, y)), tmp_path)
    out, promote = run_until(group, Stream(1), "promote")
    assert promote.evidence["golden_phase"] == "passed"
    assert promote.evidence["golden_n"] == 500
    ((golden),) = [v for v in verdicts(out) if v.evaluator == "golden"]
    assert (golden.version, golden.phase) == ("default/2", "passed")


def test_a_golden_set_too_small_to_judge_does_not_repeat_its_verdict_every_batch(tmp_path: Path) -> None:
    """A golden set below the evaluator's minimum checks nothing: the candidate that passed its trial
    waits and is not promoted; and, like every verdict, a golden one is never repeated batch after
    batch while it waits."""
    x, y = Stream(123).arrays(10)
    group = make_group(config(golden=GoldenSet(x, y)), tmp_path)
    out = group.run(Stream(1), 10)
    assert ("fork", "default/2", "shadow", "passed") in [
        (v.model, v.version, v.evaluator, v.phase) for v in verdicts(out)
    ]
    assert [d.action for d in decisions(out)] == []
    assert group.table.champion.version == "default/1"
    golden = [v for v in verdicts(out) if v.evaluator == "golden"]
    assert len(golden) <= 1
