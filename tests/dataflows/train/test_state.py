"""A group's state (`dataflows.train.state`): a new group around the champion that serves, its first
decision published once, snapshots independent of live state that resume and continue identically,
and a resume that refuses a snapshot that does not fit."""

from __future__ import annotations

import dataclasses
import pickle
import shutil
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np
import pytest
from bytewax.testing import TestingSink, TestingSource

from daemon.wiring import local_deps
from dataflows.decode import FeatureSchema
from dataflows.flow import install_champion, resume_group_state
from dataflows.lanes import LaneState, StoredLane
from dataflows.records import ModelReport
from dataflows.train import STATE_FORMAT, TrainLogic, new_group_state
from learners import Learner, LearnerSpec
from tests.dataflows.helpers import (
    CLASSES,
    FEATURES,
    GROUP,
    FakeClock,
    Group,
    Stream,
    config,
    context,
    decisions,
    event,
    label,
    make_group,
    reports,
)

PROBE = np.array([[2.0, 0.5], [-2.0, 0.5], [0.1, -1.0]])


# -- snapshots -------------------------------------------------------------------------------------


def _snapshot_model(group: Group, lane: LaneState | StoredLane) -> Learner:
    """The model a snapshot holds for a lane: in it, or stored in the registry's checkpoint store."""
    if isinstance(lane, LaneState):
        return lane.learner
    return group.deps.registry.load_state(lane.checkpoint)


def test_a_snapshot_is_independent_of_later_live_changes(tmp_path: Path) -> None:
    """Bytewax may pickle a snapshot after later batches ran: checked on the objects themselves,
    without a pickle round trip doing the copying."""
    group = make_group(config(label_window_s=60.0), tmp_path, clock=FakeClock(0.0))
    stream = Stream(9)
    group.run(stream, 2, size=40)
    group.step([event("waiting-f", [1.0, 1.0], None, offset=500), label("waiting-l", 0, offset=3)])
    snap = group.logic.take_snapshot()
    fork_before = _snapshot_model(group, snap.slots["fork"].lane).predict_proba(PROBE)
    trial = snap.slots["fork"].trial
    assert trial is not None
    evidence_before = trial.evaluator.verdict().evidence
    score_n = snap.slots["fork"].score.snapshot().n
    pending_before = {seq: dict(results) for seq, results in snap.pairing.pending.items()}

    group.clock.t = 10.0
    group.step([*stream.batch(30), label("waiting-f", 1, offset=4)])
    group.step([event("waiting-l", [-1.0, 1.0], None, offset=501), event("new", [0.0, 1.0], None, offset=502)])
    group.run(stream, 2, size=40)

    live = group.logic
    assert live.state.seq == 7
    assert snap.seq == 3
    assert (snap.join.pending_features, snap.join.pending_labels) == (1, 1)
    assert (live.state.join.pending_features, live.state.join.pending_labels) == (1, 0)
    assert snap.slots["fork"].score.snapshot().n == score_n == 80
    np.testing.assert_array_equal(_snapshot_model(group, snap.slots["fork"].lane).predict_proba(PROBE), fork_before)
    assert not np.allclose(live.lanes["fork"].learner.predict_proba(PROBE), fork_before)
    assert trial.evaluator.verdict().evidence == evidence_before
    assert snap.pairing.pending == pending_before


def _copy_group(group: Group, snapshot: bytes, directory: Path) -> Group:
    """What a restarted daemon has: the registry as it was at the snapshot, and the snapshot."""
    deps = local_deps(TestingSource([]), TestingSink([]), directory, clock=group.clock)
    install_champion(group.config, deps)
    return Group(group.config, deps, group.clock, TrainLogic(pickle.loads(snapshot), context(group.config, deps)))


def _comparable(out: Sequence[object]) -> list[object]:
    return [msgspec.structs.replace(o, learn_ms=0.0) if isinstance(o, ModelReport) else o for o in out]


def test_a_pickled_snapshot_resumes_and_continues_identically(tmp_path: Path) -> None:
    """A group resumed from its pickled snapshot (with the registry as it was then) serves, scores,
    learns and decides exactly as the group that went on: through a promotion and beyond."""
    group = make_group(config(), tmp_path / "a", clock=FakeClock(0.0))
    stream = Stream(10)
    group.run(stream, 2)
    group.step([event("pending-f", [1.0, 1.0], None, offset=900), label("pending-l", 1, offset=5)])
    snapshot = pickle.dumps(group.logic.take_snapshot())
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    resumed = _copy_group(group, snapshot, tmp_path / "b")
    assert resumed.logic.state.join.pending_features == 1
    assert {n: lane.version for n, lane in resumed.logic.lanes.items()} == {
        "champion": "default/1",
        "fork": "default/2",
    }

    batches = [stream.batch(50) for _ in range(12)]
    batches[0] += [label("pending-f", 1, offset=6), event("pending-l", [2.0, 1.0], None, offset=901)]
    promoted = False
    for batch in batches:
        served_a, out_a = group.step(list(batch))
        served_b, out_b = resumed.step(list(batch))
        assert served_b.predictions == served_a.predictions
        assert _comparable(out_b) == _comparable(out_a)
        promoted = promoted or any(d.action == "promote" for d in decisions(out_a))
        group.clock.t += 1
    assert promoted, "the stretch compared was meant to include a promotion"
    assert reports(out_a)  # the last batch was scored and reported by both
    a, b = group.deps.registry, resumed.deps.registry
    summary = [(v.id, v.status, v.parent, v.samples, v.ranges) for v in a.versions(GROUP)]
    assert [(v.id, v.status, v.parent, v.samples, v.ranges) for v in b.versions(GROUP)] == summary
    # the checkpoints saved at the promotion hold the same model (their pickled bytes may differ)
    np.testing.assert_array_equal(
        b.load_checkpoint("default/2").predict_proba(PROBE), a.load_checkpoint("default/2").predict_proba(PROBE)
    )


def test_a_group_starts_around_the_champion_that_serves_and_registers_its_candidates(tmp_path: Path) -> None:
    from dataflows.config import CandidateSpec

    cfg = config(candidates=(CandidateSpec("fork"), CandidateSpec("alt", LearnerSpec("river-logreg", {"lr": 0.1}))))
    group = make_group(cfg, tmp_path)
    versions = {v.id: v for v in group.deps.registry.versions(GROUP)}
    assert {n: lane.version for n, lane in group.logic.lanes.items()} == {
        "champion": "default/1", "fork": "default/2", "alt": "default/3",
    }  # fmt: skip
    assert (versions["default/2"].parent, versions["default/2"].status) == ("default/1", "candidate")
    assert versions["default/2"].config["fork_of"] == "default/1"
    assert (versions["default/3"].parent, versions["default/3"].config["params"]) == (None, {"lr": 0.1})
    assert group.logic.lanes["champion"].learner is group.table.champion.learner
    assert group.logic.lanes["fork"].learner is not group.table.champion.learner
    assert not group.logic.lanes["champion"].learns


# -- starting, resuming, and what a batch without work gives ----------------------------------------


def test_the_first_champions_install_decision_is_published_once_with_the_first_batch(tmp_path: Path) -> None:
    """The daemon installs the first champion before the flow starts; the decision reaches the
    model-events topic through the group's first step, once. A restart decides nothing new."""
    cfg = config()
    deps = local_deps(TestingSource([]), TestingSink([]), tmp_path / "first", clock=FakeClock(5.0))
    installed = install_champion(cfg, deps)
    assert installed is not None
    ctx = dataclasses.replace(context(cfg, deps), installed=installed)
    group = Group(cfg, deps, FakeClock(5.0), TrainLogic(new_group_state(ctx), ctx))
    _, first = group.step(Stream(1).batch(5))
    (decision,) = decisions(first)
    assert (decision.action, decision.version, decision.previous, decision.ts_ms) == (
        "promote",
        "default/1",
        None,
        5_000,
    )
    assert "first champion of group 'default'" in decision.reason
    _, second = group.step(Stream(2).batch(5))
    assert decisions(second) == []
    # a restarted daemon finds the champion in the registry: it serves it, and nothing new is decided
    shutil.copytree(tmp_path / "first", tmp_path / "restart")
    again = local_deps(TestingSource([]), TestingSink([]), tmp_path / "restart", clock=FakeClock(6.0))
    assert install_champion(cfg, again) is None
    assert again.board.current(GROUP).champion.version == "default/1"


def test_a_snapshot_taken_before_the_first_batch_keeps_the_install_decision_to_publish(tmp_path: Path) -> None:
    """The install decision waits in the group's state until the first step publishes it. A snapshot
    taken before that step must still hold it when the step has run (Bytewax may pickle the
    snapshot later): resuming from it publishes the decision again rather than losing it."""
    cfg = config()
    deps = local_deps(TestingSource([]), TestingSink([]), tmp_path, clock=FakeClock(5.0))
    installed = install_champion(cfg, deps)
    assert installed is not None
    ctx = dataclasses.replace(context(cfg, deps), installed=installed)
    group = Group(cfg, deps, FakeClock(5.0), TrainLogic(new_group_state(ctx), ctx))
    snap = group.logic.take_snapshot()
    _, out = group.step(Stream(1).batch(5))
    assert [d.action for d in decisions(out)] == ["promote"]
    assert [(d.action, d.version) for d in snap.outbox] == [("promote", "default/1")]


def test_an_empty_batch_gives_nothing(tmp_path: Path) -> None:
    group = make_group(config(), tmp_path)
    _, out = group.step([])
    assert out == []
    assert group.logic.state.seq == 0


def test_resuming_without_a_snapshot_starts_a_new_group(tmp_path: Path) -> None:
    group = make_group(config(), tmp_path)
    state = resume_group_state(None, context(group.config, group.deps))
    assert (state.features, state.classes, state.format) == (FEATURES, CLASSES, STATE_FORMAT)
    assert list(state.slots) == ["champion", "fork"]


def test_resuming_keeps_a_snapshot_that_fits(tmp_path: Path) -> None:
    group = make_group(config(), tmp_path)
    group.run(Stream(1), 1)
    restored = pickle.loads(pickle.dumps(group.logic.take_snapshot()))  # our own snapshot
    assert resume_group_state(restored, context(group.config, group.deps)) is restored


def test_resuming_refuses_a_snapshot_made_for_other_features_or_another_group(tmp_path: Path) -> None:
    group = make_group(config(), tmp_path)
    state = group.logic.take_snapshot()
    swapped = dataclasses.replace(group.config, schema=FeatureSchema(["b", "a"], CLASSES))
    with pytest.raises(ValueError, match=r"made for features \['a', 'b'\].*features \['b', 'a'\]"):
        resume_group_state(state, context(swapped, group.deps))
    other = dataclasses.replace(group.config, group="other")
    with pytest.raises(ValueError, match="group 'other'"):
        resume_group_state(state, context(other, group.deps))


def test_resuming_refuses_a_snapshot_of_an_older_format(tmp_path: Path) -> None:
    group = make_group(config(), tmp_path)
    state = group.logic.take_snapshot()
    del state.__dict__["format"]  # what unpickling a snapshot written before the field existed gives
    with pytest.raises(ValueError, match=f"snapshot format None[,;] this Headwater reads format {STATE_FORMAT}"):
        resume_group_state(state, context(group.config, group.deps))
