"""Evidence (`dataflows.train.evidence`): a report per model and job with its prequential scores,
lineage in the registry that matches what was learned, a failing model reported and never scored as
right, and a change in the champion's accuracy that starts every trial over."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataflows.ports import OffsetRange
from dataflows.records import Event, Label
from tests.dataflows.helpers import (
    CLASSES,
    GROUP,
    Broken,
    Stream,
    config,
    label,
    make_group,
    reports,
    trained_learner,
)


def _ys(batch: list[Event | Label]) -> np.ndarray:
    return np.array([e.label for e in batch if isinstance(e, Event)])


# -- reports and lineage --------------------------------------------------------------------------


def test_reports_carry_what_each_model_did_with_rolling_accuracy_and_lag(tmp_path: Path) -> None:
    """One report per model and labelled batch: the untrained champion (always class 0, never
    taught) and the fork, with cumulative and rolling accuracy over the configured window."""
    group = make_group(config(rolling_window=100), tmp_path)
    stream = Stream(3)
    batches = [stream.batch(50) for _ in range(3)]
    out: list[object] = []
    for batch in batches:
        out.extend(group.step(batch)[1])
        group.clock.t += 1
    right = [(_ys(b) == 0) for b in batches]  # what the champion gets right

    champion = reports(out, "champion")
    assert [r.batch for r in champion] == [1, 2, 3]
    last = champion[-1]
    assert (last.group, last.version, last.role) == (GROUP, "default/1", "champion")
    assert (last.n_labelled, last.n_learned, last.n_correct) == (50, 0, int(right[2].sum()))
    assert last.accuracy == pytest.approx(np.concatenate(right).mean())
    assert last.rolling_accuracy == pytest.approx(np.concatenate(right[1:]).mean())
    assert last.rolling_log_loss == pytest.approx(np.log(2))
    assert (last.lag_batches, last.skipped_batches_total, last.error) == (0, 0, None)
    assert last.offsets == {}  # the champion learns nothing
    assert last.ts_ms == 1_002_000

    fork = reports(out, "fork")
    assert [(r.version, r.role, r.n_learned) for r in fork] == [("default/2", "candidate", 50)] * 3
    assert fork[0].n_correct == int(right[0].sum())  # a clone of the untrained champion, before learning
    assert fork[2].offsets == {"events/0": [100, 149]}
    assert fork[2].learn_ms >= 0


def test_lineage_in_the_registry_matches_the_offsets_of_the_batches_learned(tmp_path: Path) -> None:
    """The fork's version records every input offset of every batch it learned (events, and the
    labels and earlier events a delayed label joined); the champion, which never learns, none."""
    group = make_group(config(min_samples=1000), tmp_path)  # no promotion here
    stream = Stream(1)
    group.run(stream, 4)
    registry = group.deps.registry
    fork = registry.version("default/2")
    assert fork.ranges == (OffsetRange("events", 0, 0, 199),)
    assert fork.samples == 200
    assert (registry.version("default/1").ranges, registry.version("default/1").samples) == ((), 0)

    group.step(stream.batch(10, labelled=False))  # offsets 200..209, waiting for labels
    _, out = group.step([label("e203", 1, offset=5), label("e207", 0, offset=6)])
    (report,) = reports(out, "fork")
    assert report.offsets == {"events/0": [203, 207], "labels/0": [5, 6]}
    assert report.n_learned == 2
    fork = registry.version("default/2")
    assert fork.ranges == (OffsetRange("events", 0, 0, 209), OffsetRange("labels", 0, 5, 6))
    assert fork.samples == 202


def test_a_model_that_cannot_learn_says_so_and_carries_on(tmp_path: Path) -> None:
    group = make_group(config(), tmp_path)
    fork = group.logic.lanes["fork"]
    broken = Broken(fork.learner, learn=True)
    fork.replace(fork.version, broken, learns=True)
    stream = Stream(7)
    _, out = group.step(stream.batch(20))
    (report,) = reports(out, "fork")
    assert report.error == "learn: OverflowError: math range error"
    assert (report.n_labelled, report.n_learned, report.offsets) == (20, 0, {})
    assert group.deps.registry.version("default/2").samples == 0

    broken.fail_learn = False
    _, out = group.step(stream.batch(20))
    (report,) = reports(out, "fork")
    assert (report.error, report.n_learned, report.offsets) == (None, 20, {"events/0": [20, 39]})


def test_non_finite_probabilities_in_training_are_a_failure_not_a_score(tmp_path: Path) -> None:
    group = make_group(config(), tmp_path)
    champion = group.logic.lanes["champion"]
    champion.replace(champion.version, Broken(champion.learner, nan=True), learns=False)
    _, out = group.step(Stream(8).batch(10))
    (report,) = reports(out, "champion")
    assert report.error is not None and "not finite" in report.error
    assert report.n_correct == 0


def test_the_champions_scores_match_the_predictions_it_served(tmp_path: Path) -> None:
    """The champion is frozen, so what it is credited with is exactly what users got."""
    group = make_group(config(min_samples=1000), tmp_path, champion=trained_learner(n=300))
    stream = Stream(13)
    for _ in range(5):
        batch = stream.batch(40)
        served, out = group.step(batch)
        truth = {e.id: e.label for e in batch if isinstance(e, Event)}
        right = sum(CLASSES.index(p.prediction) == truth[p.id] for p in served.predictions)
        (report,) = reports(out, "champion")
        assert report.n_correct == right
        group.clock.t += 1


def test_a_change_in_the_champions_accuracy_starts_every_trial_over(tmp_path: Path) -> None:
    """The champion is frozen: when its accuracy on fresh labels moves, the data changed. Evidence
    from before says nothing about the candidates after it: their trials start over, and a
    `drift` verdict on the champion says why."""
    from tests.dataflows.helpers import concept_b, trained_learner, verdicts

    group = make_group(config(min_samples=10_000, max_samples=100_000), tmp_path, champion=trained_learner())
    out = group.run(Stream(21), 20, size=100)
    trial = group.logic.state.slots["fork"].trial
    assert trial is not None and trial.evaluator.verdict().evidence["n"] == 2000
    assert [v for v in verdicts(out) if v.evaluator == "drift"] == []
    out = group.run(Stream(22, concept_b), 5, size=100)
    (drift,) = [v for v in verdicts(out) if v.evaluator == "drift"]
    assert (drift.model, drift.phase) == ("champion", "failed")
    assert "the data changed" in drift.reason
    assert float(drift.evidence["before"]) > 0.9 > float(drift.evidence["after"])  # type: ignore[arg-type]
    trial = group.logic.state.slots["fork"].trial
    assert trial is not None and int(trial.evaluator.verdict().evidence["n"] or 0) < 500
    group.logic.close()


def test_when_the_champion_gets_worse_a_refused_candidate_is_judged_again_at_once(tmp_path: Path) -> None:
    """A refusal is evidence against the champion as it was: after an abrupt change that made the
    champion worse, a refused fork does not wait out its refusal (the stale champion would serve
    all that while). When the champion gets better instead (a burst of wrong labels ending), a
    refused fork waits on: it may have learned the burst."""
    from tests.dataflows.helpers import concept_b, trained_learner, verdicts

    group = make_group(config(min_samples=10_000, max_samples=100_000), tmp_path, champion=trained_learner())
    group.run(Stream(23), 20, size=100)
    slot = group.logic.state.slots["fork"]
    assert slot.trial is not None
    slot.trial.wait, slot.refusals = 100_000, 2  # as if refused twice not long ago
    out = group.run(Stream(24, concept_b), 5, size=100)
    (drift,) = [v for v in verdicts(out) if v.evaluator == "drift"]
    assert float(drift.evidence["after"]) < float(drift.evidence["before"])  # type: ignore[arg-type]
    assert "judged again at once" in drift.reason
    assert slot.trial is not None and slot.trial.wait == 0 and slot.refusals == 0
    group.logic.close()

    group = make_group(config(min_samples=10_000, max_samples=100_000), tmp_path / "up", champion=trained_learner())
    group.run(Stream(25, concept_b), 20, size=100)  # the champion is wrong on all of it, steadily
    slot = group.logic.state.slots["fork"]
    assert slot.trial is not None
    slot.trial.wait, slot.refusals = 100_000, 2
    out = group.run(Stream(26), 5, size=100)
    (drift,) = [v for v in verdicts(out) if v.evaluator == "drift"]
    assert float(drift.evidence["after"]) > float(drift.evidence["before"])  # type: ignore[arg-type]
    assert "judged again" not in drift.reason
    assert slot.trial is not None and slot.trial.wait > 0 and slot.refusals == 2
    group.logic.close()
