"""The label quarantine in the train step (`dataflows.train.quarantine`): held batches reach no
lane; an operator's ``release_quarantine`` learns them (or drops them) as one job; what is held
survives a snapshot and comes back. Real learners, a SQLite registry, inline lanes."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

from dataflows.config import QuarantineSpec
from dataflows.ports import OffsetRange
from dataflows.records import QuarantineRecord
from dataflows.train import TrainLogic, quarantine
from tests.dataflows.helpers import Group, Stream, concept_b, config, context, make_group, reports, trained_learner
from tests.dataflows.train.test_commands import Operator

SPEC = QuarantineSpec(window=100, warmup=300, probe=False)  # no probe: only an operator releases it


def _group(tmp_path: Path) -> Group:
    cfg = dataclasses.replace(config(min_samples=5000, max_samples=5000, probation_samples=5000), quarantine=SPEC)
    return make_group(cfg, tmp_path, champion=trained_learner())


def _quarantined(group: Group, stream: Stream) -> list[QuarantineRecord]:
    """Ten clean batches (offsets 0..499), then the labels flip (concept B) for four: held."""
    group.run(stream, 10)
    stream.concept = concept_b
    out = group.run(stream, 4)  # offsets 500..699
    stream.concept = Stream().concept
    records = [r for r in out if isinstance(r, QuarantineRecord)]
    assert [r.action for r in records][:1] == ["engaged"] and records[0].reason.startswith("loss spike")
    assert group.logic.state.quarantine is not None and group.logic.state.quarantine.engaged
    return records


def test_held_batches_reach_no_lane_and_an_operator_release_learns_them(tmp_path: Path) -> None:
    group, stream = _group(tmp_path), Stream(1)
    records = _quarantined(group, stream)
    held = sum(r.examples for r in records)
    assert held == sum(len(j) for j in group.logic.state.held) >= 100
    fork = group.deps.registry.version(group.logic.lanes["fork"].version)
    assert fork.samples == 700 - held  # the fork learned the clean batches only
    assert all(o.last < 700 for r in records for o in map(lambda t: OffsetRange(*t), r.offsets))

    record, out = Operator(group).send("release_quarantine", {"learn": True})
    assert (record.outcome, record.detail) == ("applied", f"{held} held labels learned")
    (released,) = [r for r in out if isinstance(r, QuarantineRecord)]
    assert (released.action, released.examples) == ("released", held) and "alice" in released.reason
    assert group.logic.state.held == () and not quarantine.engaged(group.logic.rt)
    assert [r.n_learned for r in reports(out, "fork")] == [held]  # one job, handed out with the command
    assert group.deps.registry.version(group.logic.lanes["fork"].version).samples == 700


def test_dropped_labels_are_never_learned_and_nothing_held_is_a_rejection(tmp_path: Path) -> None:
    group, stream = _group(tmp_path), Stream(2)
    ops = Operator(group)
    nothing, _ = ops.send("release_quarantine")
    assert nothing.outcome == "rejected" and "holds no labels back" in nothing.detail
    records = _quarantined(group, stream)
    held = sum(r.examples for r in records)
    record, out = ops.send("release_quarantine", {"learn": False})
    assert (record.outcome, record.detail) == ("applied", f"{held} held labels dropped")
    assert [r.action for r in out if isinstance(r, QuarantineRecord)] == ["cleared"]
    assert reports(out, "fork") == []
    group.run(stream, 2)
    assert group.deps.registry.version(group.logic.lanes["fork"].version).samples == 700 - held + 100


def test_what_is_held_survives_a_snapshot(tmp_path: Path) -> None:
    group, stream = _group(tmp_path), Stream(3)
    records = _quarantined(group, stream)
    held = sum(r.examples for r in records)
    taken = group.logic.take_snapshot()
    assert taken.quarantine is not group.logic.state.quarantine, "a snapshot must not share the live state"
    snapshot = pickle.loads(pickle.dumps(taken))
    group.logic.close()

    resumed = Group(group.config, group.deps, group.clock, TrainLogic(snapshot, context(group.config, group.deps)))
    assert quarantine.engaged(resumed.logic.rt) and sum(len(j) for j in resumed.logic.state.held) == held
    record, out = Operator(resumed).send("release_quarantine", {"learn": True})
    assert record.outcome == "applied"
    assert [r.n_learned for r in reports(out, "fork")] == [held]
    resumed.logic.close()
