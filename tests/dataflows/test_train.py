"""The train step: labels joined to the features served, every model scored then taught, reports
and lineage recorded, nothing lost to a failing model or a quiet stream, and snapshots that resume
exactly. Driven through `TrainLogic`'s Bytewax hooks with real learners, a SQLite registry and the
board's promoter, on an injected clock."""

from __future__ import annotations

import dataclasses
import pickle
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np
import pytest
from bytewax.operators import StatefulLogic
from bytewax.testing import TestingSink, TestingSource

from daemon.wiring import local_deps
from dataflows.decode import FeatureSchema
from dataflows.flow import install_champion, resume_group_state
from dataflows.lanes import LaneState, StoredLane
from dataflows.ports import OffsetRange
from dataflows.records import DeadLetterReason, Event, Label, ModelReport
from dataflows.serve import Served, ServingTable
from dataflows.train import STATE_FORMAT, TrainLogic, new_group_state
from dataflows.train.trials import STANDBY_SLOT
from learners import Learner, LearnerSpec, build_learner
from tests.dataflows.helpers import (
    CLASSES,
    FEATURES,
    GROUP,
    LOGREG,
    Broken,
    FakeClock,
    Gated,
    Group,
    Memo,
    Stream,
    Wrapped,
    config,
    context,
    dead,
    decisions,
    event,
    label,
    make_group,
    reports,
    trained_learner,
)

PROBE = np.array([[2.0, 0.5], [-2.0, 0.5], [0.1, -1.0]])


def _memo_fork(group: Group) -> Memo:
    """Put a memorising model in the fork's lane, to see exactly what it is taught."""
    memo = Memo()
    fork = group.logic.lanes["fork"]
    fork.replace(fork.version, memo, learns=True)
    return memo


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


# -- the label join -----------------------------------------------------------------------------


def test_a_delayed_label_teaches_the_features_logged_when_the_event_was_served(tmp_path: Path) -> None:
    group = make_group(config(label_window_s=60.0), tmp_path, clock=FakeClock(0.0))
    memo = _memo_fork(group)
    served, out = group.step([event("u", [0.25, -1.5], None, offset=99)])
    assert len(served.predictions) == 1
    assert reports(out) == []  # nothing labelled yet
    assert group.logic.state.join.pending_features == 1

    group.clock.t = 30.0
    _, out = group.step([label("u", 1, offset=7)])
    (report,) = reports(out, "fork")
    assert (report.n_labelled, report.n_learned, report.n_correct) == (1, 1, 0)
    assert report.offsets == {"events/0": [99, 99], "labels/0": [7, 7]}
    assert report.pending_features == 0
    assert memo.history == [(0.25, -1.5)]
    assert dead(out) == []


def test_a_label_before_its_event_joins_when_the_event_comes(tmp_path: Path) -> None:
    group = make_group(config(label_window_s=60.0), tmp_path, clock=FakeClock(0.0))
    memo = _memo_fork(group)
    _, out = group.step([label("v", 1, offset=3)])
    assert reports(out) == []
    assert group.logic.state.join.pending_labels == 1

    group.clock.t = 5.0
    _, out = group.step([event("v", [2.0, 2.0], None, offset=42)])
    (report,) = reports(out, "fork")
    assert (report.n_labelled, report.n_learned, report.pending_labels, report.pending_features) == (1, 1, 0, 0)
    assert memo.history == [(2.0, 2.0)]


def test_an_event_and_its_label_in_one_batch_join(tmp_path: Path) -> None:
    group = make_group(config(), tmp_path)
    memo = _memo_fork(group)
    _, out = group.step([label("w", 0, offset=1), event("w", [-1.0, 1.0], None, offset=8)])
    (report,) = reports(out, "fork")
    assert report.n_learned == 1
    assert memo.seen == {(-1.0, 1.0): 0}


def test_a_label_that_outlives_the_window_is_dead_lettered_with_its_original_bytes(tmp_path: Path) -> None:
    group = make_group(config(label_window_s=10.0), tmp_path, clock=FakeClock(0.0))
    ghost = label("ghost", 1, offset=17)
    _, out = group.step([ghost])
    assert dead(out) == []
    group.clock.t = 5.0
    _, out = group.step([event("x", [1.0, 1.0], None, offset=1)])
    assert dead(out) == []

    group.clock.t = 11.0
    _, out = group.step([event("y", [1.0, 1.0], None, offset=2)])
    (letter,) = dead(out)
    assert letter.reason is DeadLetterReason.LABEL_UNMATCHED
    assert (letter.source, letter.original) == (ghost.source, ghost.original)
    assert "'ghost'" in letter.detail
    join = group.logic.state.join
    assert (join.labels_unmatched_total, join.pending_labels, join.pending_features) == (1, 0, 2)


def test_features_that_outlive_the_window_no_longer_join(tmp_path: Path) -> None:
    group = make_group(config(label_window_s=10.0), tmp_path, clock=FakeClock(0.0))
    memo = _memo_fork(group)
    group.step([event("late", [1.0, 1.0], None, offset=1)])
    group.clock.t = 20.0
    _, out = group.step([label("late", 1)])
    assert reports(out) == []
    assert memo.history == []
    join = group.logic.state.join
    assert (join.features_expired_total, join.pending_labels) == (1, 1)


def test_a_quiet_stream_still_dead_letters_expired_labels(tmp_path: Path) -> None:
    """No batch comes after the label: Bytewax's notification expires it."""
    group = make_group(config(label_window_s=30.0), tmp_path, clock=FakeClock(1_000.0))
    ghost = label("ghost", 1, offset=4)
    group.step([ghost])
    group.clock.t = 1_029.0
    out, retain = group.logic.on_notify()
    assert list(out) == []
    group.clock.t = 1_031.0
    out, retain = group.logic.on_notify()
    ((letter,),) = [dead(out)]
    assert (letter.reason, letter.source, letter.original) == (
        DeadLetterReason.LABEL_UNMATCHED,
        ghost.source,
        ghost.original,
    )
    assert retain is StatefulLogic.RETAIN


def test_a_quiet_group_asks_to_be_woken_when_its_oldest_label_expires_and_not_before(tmp_path: Path) -> None:
    """With inline lanes nothing is ever in flight: the next notification is the label's expiry,
    and once nothing waits, none. (A group that asks again every 50 ms forever costs a wake-up per
    group 20 times a second on an idle stream.)"""
    group = make_group(config(label_window_s=30.0), tmp_path, clock=FakeClock(1_000.0))
    group.step([label("ghost", 1)])
    due = group.logic.notify_at()
    assert due is not None
    assert due.timestamp() == 1_030.0
    group.clock.t = 1_031.0
    group.logic.on_notify()
    assert group.logic.notify_at() is None


def test_a_second_label_for_an_id_dead_letters_the_first(tmp_path: Path) -> None:
    group = make_group(config(), tmp_path)
    first, second = label("twice", 1, offset=1), label("twice", 0, offset=2)
    group.step([first])
    _, out = group.step([second])
    ((letter,),) = [dead(out)]
    assert (letter.source, letter.original) == (first.source, first.original)
    memo = _memo_fork(group)
    group.step([event("twice", [3.0, 3.0], None, offset=9)])
    assert memo.seen == {(3.0, 3.0): 0}  # the second label is the one learned


def test_max_pending_bounds_waiting_labels_and_features(tmp_path: Path) -> None:
    group = make_group(config(max_pending=2), tmp_path)
    labels = [label(f"g{i}", 1, offset=i) for i in range(4)]
    _, out = group.step(list(labels))
    assert [(d.reason, d.source, d.original) for d in dead(out)] == [
        (DeadLetterReason.LABEL_UNMATCHED, lab.source, lab.original) for lab in labels[:2]
    ]
    group.step([event(f"f{i}", [1.0, 0.0], None, offset=i) for i in range(5)])
    join = group.logic.state.join
    assert (join.pending_labels, join.labels_unmatched_total) == (2, 2)
    assert (join.pending_features, join.features_expired_total) == (2, 3)


@pytest.mark.parametrize("drain", [True, False])
def test_the_end_of_the_input_dead_letters_waiting_labels_only_when_told_to(tmp_path: Path, drain: bool) -> None:
    group = make_group(config(), tmp_path, drain_on_eof=drain)
    waiting = [label("w1", 1, offset=1), label("w2", 0, offset=2)]
    group.step([*waiting, event("f", [1.0, 1.0], None, offset=3)])
    out, retain = group.logic.on_eof()
    assert retain is StatefulLogic.RETAIN
    join = group.logic.state.join
    if drain:
        assert [(d.reason, d.source, d.original) for d in dead(out)] == [
            (DeadLetterReason.LABEL_UNMATCHED, w.source, w.original) for w in waiting
        ]
        assert (join.pending_labels, join.pending_features) == (0, 0)
    else:
        assert dead(out) == []
        assert (join.pending_labels, join.pending_features) == (2, 1)
        # and after a resume, a waiting label still joins its event
        resumed = TrainLogic(group.logic.take_snapshot(), context(group.config, group.deps))
        memo = Memo()
        resumed.lanes["fork"].replace("default/2", memo, learns=True)
        resumed.on_item(group.serve([event("w1", [4.0, 4.0], None, offset=9)]).batch)
        assert memo.seen == {(4.0, 4.0): 1}


def test_without_a_labels_topic_unlabelled_features_are_not_kept(tmp_path: Path) -> None:
    with_topic = make_group(config(), tmp_path / "with")
    without = make_group(config(labels_topic=False), tmp_path / "without")
    unlabelled = Stream(4).batch(10, labelled=False)
    with_topic.step(list(unlabelled))
    served, _ = without.step(list(unlabelled))
    assert len(served.predictions) == 10
    assert with_topic.logic.state.join.pending_features == 10
    assert without.logic.state.join.pending_features == 0
    _, out = without.step(Stream(5).batch(8))
    assert reports(out, "fork")[0].n_learned == 8  # inline labels are still learned


# -- failing models --------------------------------------------------------------------------------


def test_a_champion_that_cannot_serve_dead_letters_its_events_and_their_labels_are_still_learned(
    tmp_path: Path,
) -> None:
    group = make_group(config(label_window_s=60.0), tmp_path)
    champion = group.table.champion
    broken = Broken(champion.learner, predict=True)
    group.deps.board.publish(ServingTable(GROUP, Served(champion.version, broken)))
    group.logic.lanes["champion"].replace(champion.version, broken, learns=False)
    memo = _memo_fork(group)

    batch = Stream(6).batch(6)
    served, out = group.step([*batch, event("later", [0.5, 0.5], None, offset=100)])
    assert served.predictions == []
    assert [d.reason for d in served.dead_letters] == [DeadLetterReason.MODEL_ERROR] * 7
    first = batch[0]
    assert isinstance(first, Event)
    assert msgspec.json.decode(served.dead_letters[0].original or b"") == {
        "id": first.id, "features": first.x, "label_index": first.label,
    }  # fmt: skip
    (champion_report,) = reports(out, "champion")
    assert champion_report.error == "predict: RuntimeError: boom"
    assert (champion_report.n_labelled, champion_report.n_correct) == (6, 0)
    (fork_report,) = reports(out, "fork")
    assert (fork_report.n_learned, fork_report.error) == (6, None)

    # the event that could not be served still meets its label
    _, out = group.step([label("later", 1, offset=1)])
    assert reports(out, "fork")[0].n_learned == 1
    assert memo.seen[(0.5, 0.5)] == 1


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


# -- threaded lanes --------------------------------------------------------------------------------


def test_a_slow_candidate_never_holds_serving_and_skips_what_it_cannot_keep_up_with(tmp_path: Path) -> None:
    """Threaded lanes: while the fork is stuck learning batch 1, batches keep being served and the
    champion keeps scoring; the fork skips its oldest waiting batch (reported with its lag), learns
    the rest once it is fast again, and its lineage shows the gap."""
    group = make_group(config(threaded=True, max_lag_batches=2), tmp_path)
    gate, entered = threading.Event(), threading.Event()
    fork = group.logic.lanes["fork"]
    fork.replace(fork.version, Gated(fork.learner, gate, entered), learns=True)
    stream = Stream(11)
    out: list[object] = []
    try:
        served, got = group.step(stream.batch(50))
        out += got
        assert entered.wait(10), "the fork never started learning batch 1"
        for _ in range(3):
            served, got = group.step(stream.batch(50))  # returns although the fork is stuck
            assert len(served.predictions) == 50
            out += got
        more, _ = group.logic.on_notify()  # threaded: a batch's results are collected after it
        out += list(more)
        (skipped,) = reports(out, "fork")
        assert (skipped.batch, skipped.n_labelled, skipped.n_learned) == (2, 0, 0)
        assert (skipped.lag_batches, skipped.skipped_batches_total) == (3, 1)
        assert skipped.error == "2 batches behind: skipped batch 2 (50 examples)"
        assert group.logic.notify_at() is not None  # work in flight: Bytewax is asked to look again
    finally:
        gate.set()
    for lane in group.logic.lanes.values():
        assert lane.wait_idle(timeout_s=10), f"lane {lane.name} still busy"
    late, _ = group.logic.on_notify()
    out += list(late)
    fork_reports = reports(out, "fork")
    assert sorted((r.batch, r.n_learned, r.lag_batches) for r in fork_reports[1:]) == [
        (1, 50, 0),
        (3, 50, 0),
        (4, 50, 0),
    ]
    assert sorted(r.batch for r in reports(out, "champion")) == [1, 2, 3, 4]
    lineage = group.deps.registry.version("default/2")
    assert lineage.ranges == (OffsetRange("events", 0, 0, 49), OffsetRange("events", 0, 100, 199))
    assert lineage.samples == 150
    group.logic.on_eof()


class Counting(Wrapped):
    """Counts the examples it learned (a frozen copy keeps the count it had)."""

    def __init__(self, inner: Wrapped | object) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self.learned = 0

    def learn(self, x: np.ndarray, y: np.ndarray) -> None:
        self.inner.learn(x, y)
        self.learned += len(y)


def test_a_version_promoted_from_threaded_lanes_is_credited_only_with_what_its_checkpoint_learned(
    tmp_path: Path,
) -> None:
    """The promoted version's lineage (samples and offsets in the registry) must describe the
    frozen model that serves and was saved, not batches the lane learned after the freeze. The
    lanes run on their threads; the test waits for them with a bound."""
    mismatches: list[str] = []
    for attempt in range(6):
        untrained = build_learner(LOGREG, n_features=2, n_classes=2, feature_names=FEATURES)
        group = make_group(config(threaded=True), tmp_path / str(attempt), champion=Counting(untrained))
        stream = Stream(attempt)
        for _ in range(40):
            _, out = group.step(stream.batch(50))
            if decisions(out):
                break
            for lane in group.logic.lanes.values():  # let this batch's results be collected next time
                assert lane.wait_idle(timeout_s=10)
        (decision,) = [d for d in decisions(out) if d.action == "promote"]
        for lane in group.logic.lanes.values():
            assert lane.wait_idle(timeout_s=10)
        group.logic.on_notify()
        serving = group.table.champion
        assert serving.version == decision.version
        info = group.deps.registry.version(decision.version)
        frozen_learned = serving.learner.learned  # type: ignore[attr-defined]
        if info.samples != frozen_learned or info.ranges != (OffsetRange("events", 0, 0, frozen_learned - 1),):
            mismatches.append(f"#{attempt}: registry {info.samples} samples {info.ranges}, checkpoint {frozen_learned}")
        group.logic.close()
    assert mismatches == []


def test_a_restart_from_a_snapshot_older_than_a_promotion_goes_on_from_the_registrys_champion(
    tmp_path: Path,
) -> None:
    """The daemon crashed after a promotion and before the next snapshot. On restart the registry's
    champion serves; the candidate that was promoted must not go on learning under the champion's
    version (its lineage would grow, and its next passing trial would promote the champion again)."""
    group = make_group(config(), tmp_path)
    stream = Stream(1)
    group.run(stream, 2)
    snapshot = pickle.dumps(group.logic.take_snapshot())
    for _ in range(20):
        out = group.run(stream, 1)
        if decisions(out):
            break
    assert "promote" in [d.action for d in decisions(out)]
    champion = group.table.champion.version
    recorded = {(d.action, d.version, d.ts_ms) for d in group.deps.registry.decisions(GROUP)}
    group.logic.close()

    group.logic = TrainLogic(pickle.loads(snapshot), context(group.config, group.deps))
    versions = {name: lane.version for name, lane in group.logic.lanes.items()}
    assert versions["champion"] == champion
    assert versions["fork"] != champion
    # The snapshot's fork was the version promoted since: forked again, it is not retired with it.
    assert group.deps.registry.version(champion).status == "champion"
    in_registry = group.deps.registry.champion(GROUP)
    assert in_registry is not None and in_registry.id == champion
    samples = group.deps.registry.version(champion).samples
    later = group.run(stream, 20)  # raises if the champion is promoted over itself
    assert group.deps.registry.version(champion).samples == samples
    new = [d for d in decisions(later) if (d.action, d.version, d.ts_ms) not in recorded]  # not emitted again
    assert all(d.version != champion or d.action == "retire" for d in new)
    assert STANDBY_SLOT not in group.logic.lanes or group.logic.lanes[STANDBY_SLOT].version != champion


def test_the_hooks_retain_the_groups_state(tmp_path: Path) -> None:
    group = make_group(config(), tmp_path)
    _, retain = group.logic.on_item(group.serve(Stream(1).batch(5)).batch)
    assert retain is StatefulLogic.RETAIN
    _, retain = group.logic.on_notify()
    assert retain is StatefulLogic.RETAIN
    _, retain = group.logic.on_eof()
    assert retain is StatefulLogic.RETAIN


def test_on_eof_waits_for_threaded_lanes_and_reports_their_work(tmp_path: Path) -> None:
    """At the end of the input every lane finishes (bounded wait) and every batch is reported once."""
    group = make_group(config(threaded=True, min_samples=1000), tmp_path)
    stream = Stream(12)
    out: list[object] = []
    for _ in range(5):
        out += group.step(stream.batch(40))[1]
    end, _ = group.logic.on_eof()
    out += list(end)
    assert all(lane.backlog == 0 for lane in group.logic.lanes.values())
    for model in ("champion", "fork"):
        assert sorted(r.batch for r in reports(out, model)) == [1, 2, 3, 4, 5]
    assert group.deps.registry.version("default/2").samples == 200


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
    """`build_flow` installs the first champion before the first event; the decision reaches the
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


def test_a_jobs_offsets_are_contiguous_runs_not_a_stretch_over_what_was_never_read() -> None:
    """A delayed label joins its event, read long before: the job learned offset 0 and 1000..1002,
    not everything in between, and the lineage must say so."""
    from dataflows.records import SourceRef
    from dataflows.train.examples import ranges as _ranges

    sources = [SourceRef("events", 0, o) for o in (1001, 1000, 0, 1002)] + [SourceRef("labels", 1, 7)]
    assert _ranges(sources) == (
        OffsetRange("events", 0, 0, 0),
        OffsetRange("events", 0, 1000, 1002),
        OffsetRange("labels", 1, 7, 7),
    )


def test_a_resume_from_before_a_promotion_matches_the_registry_in_every_slot(tmp_path: Path) -> None:
    """The daemon crashed after a promotion, before its next snapshot: on resume the fork starts
    again from the registry's champion, the registry's standby is on probation again, and the
    versions made after the snapshot that no lane holds are retired (with a decision)."""
    from tests.dataflows.helpers import concept_b, trained_learner

    group = make_group(config(), tmp_path, champion=trained_learner())
    stream = Stream(31, concept_b)
    group.run(stream, 1)
    snapshot = pickle.dumps(group.logic.take_snapshot())
    out: list[object] = []
    for _ in range(30):
        out += group.run(stream, 1)
        if any(d.action == "promote" for d in decisions(out)):
            break
    (promote,) = [d for d in decisions(out) if d.action == "promote"]
    registry = group.deps.registry
    assert registry.version(promote.previous or "").status == "standby"
    group.logic.close()

    resumed = TrainLogic(pickle.loads(snapshot), context(group.config, group.deps))
    lanes = resumed.lanes
    assert lanes["champion"].version == promote.version
    fork = registry.version(lanes["fork"].version)
    assert (fork.parent, fork.status) == (promote.version, "candidate")
    assert lanes[STANDBY_SLOT].version == promote.previous
    trial = resumed.state.slots[STANDBY_SLOT].trial
    assert trial is not None and trial.kind == "probation"
    held = {lane.version for lane in lanes.values()}
    assert [v.id for v in registry.versions(GROUP) if v.status == "candidate"] == [fork.id]
    assert all(v.id in held for v in registry.versions(GROUP) if v.status in ("champion", "standby", "candidate"))
    outbox = [(d.action, d.version) for d in resumed.state.outbox]
    assert any(action == "retire" for action, _ in outbox)  # the fork left behind, said so
    resumed.close()


def test_decisions_recorded_after_the_snapshot_are_emitted_again_on_resume(tmp_path: Path) -> None:
    """The daemon may crash after a decision reached the registry and before it reached the
    model-events topic: a resume emits every decision recorded since its snapshot (at least once)."""
    group = make_group(config(), tmp_path)
    stream = Stream(1)
    group.run(stream, 2)
    snapshot = pickle.dumps(group.logic.take_snapshot())
    before = len(group.deps.registry.decisions(GROUP))
    assert group.deps.registry.decision_count(GROUP) == before
    for _ in range(20):
        if decisions(group.run(stream, 1)):
            break
    made = group.deps.registry.decisions(GROUP, skip=before)
    assert "promote" in [d.action for d in made]
    group.logic.close()

    group.logic = TrainLogic(pickle.loads(snapshot), context(group.config, group.deps))
    again = decisions(group.run(stream, 1))
    assert [(d.action, d.version, d.ts_ms) for d in again[: len(made)]] == [
        (d.action, d.version, d.ts_ms) for d in made
    ]
    # Emitted once: a later snapshot and resume does not emit them again.
    later = pickle.dumps(group.logic.take_snapshot())
    group.logic.close()
    group.logic = TrainLogic(pickle.loads(later), context(group.config, group.deps))
    assert not [
        d
        for d in decisions(group.run(stream, 1))
        if (d.action, d.version, d.ts_ms) in {(m.action, m.version, m.ts_ms) for m in made}
    ]


def test_a_start_without_recovery_state_retires_the_last_runs_candidates_on_the_topic(tmp_path: Path) -> None:
    """Candidates of a run whose state is gone will never learn again: they are retired, and the
    retirements reach the model-events topic with the first batch, as every decision does."""
    group = make_group(config(), tmp_path)
    stale = group.logic.lanes["fork"].version
    group.logic.close()
    ctx = context(group.config, group.deps)
    group.logic = TrainLogic(new_group_state(ctx), ctx)
    retired = [d for d in decisions(group.run(Stream(2), 1)) if d.action == "retire"]
    assert [(d.version, d.reason) for d in retired] == [
        (stale, "the daemon started without this version's recovery state")
    ]
    assert group.deps.registry.version(stale).status == "retired"
