"""Labelled examples (`dataflows.train.evidence`): labels joined to the features served, in any
order within the window; labels that outlive it dead-lettered with their original bytes; a job's
offsets as runs. Driven through `TrainLogic`'s hooks with real learners, a SQLite registry and the
board's promoter, on an injected clock."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from bytewax.operators import StatefulLogic

from dataflows.ports import OffsetRange
from dataflows.records import DeadLetterReason, Event
from dataflows.serve import Served, ServingTable
from dataflows.train import TrainLogic
from tests.dataflows.helpers import (
    GROUP,
    Broken,
    FakeClock,
    Group,
    Memo,
    Stream,
    config,
    context,
    dead,
    event,
    label,
    make_group,
    reports,
)


def _memo_fork(group: Group) -> Memo:
    """Put a memorising model in the fork's lane, to see exactly what it is taught."""
    memo = Memo()
    fork = group.logic.lanes["fork"]
    fork.replace(fork.version, memo, learns=True)
    return memo


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


# -- a champion that cannot serve ----------------------------------------------------------------


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


def test_a_jobs_offsets_are_contiguous_runs_not_a_stretch_over_what_was_never_read() -> None:
    """A delayed label joins its event, read long before: the job learned offset 0 and 1000..1002,
    not everything in between, and the lineage must say so."""
    from dataflows.records import SourceRef
    from dataflows.train.evidence import ranges as _ranges

    sources = [SourceRef("events", 0, o) for o in (1001, 1000, 0, 1002)] + [SourceRef("labels", 1, 7)]
    assert _ranges(sources) == (
        OffsetRange("events", 0, 0, 0),
        OffsetRange("events", 0, 1000, 1002),
        OffsetRange("labels", 1, 7, 7),
    )
