"""LabelJoin: delayed labels meet the features logged at prediction time, within bounds."""

from __future__ import annotations

import pickle

from dataflows.labels import LabelJoin, Pending
from dataflows.records import Label, SourceRef


def _pending(at: float, offset: int = 0, pred: int = 0) -> Pending:
    return Pending(x=[float(offset), 1.0], preds={"m1": pred}, at=at, source=SourceRef("events", 0, offset))


def _label(event_id: str, label: int = 1, offset: int = 0) -> Label:
    original = f'{{"id": "{event_id}", "label": {label}}}'.encode()
    return Label(event_id, label, SourceRef("labels", 0, offset), original)


def test_label_after_features_matches() -> None:
    join = LabelJoin(window_s=10, max_pending=100)
    pending = _pending(at=0.0, offset=5, pred=1)
    assert join.add_features("e1", pending) is None
    assert join.pending_features == 1

    matched, evicted = join.add_label(_label("e1"), now=1.0)
    assert matched is pending
    assert evicted == []
    assert join.pending_features == 0
    assert join.pending_labels == 0
    assert join.labels_unmatched_total == 0


def test_label_before_features_matches() -> None:
    join = LabelJoin(window_s=10, max_pending=100)
    label = _label("e1", label=0)
    matched, evicted = join.add_label(label, now=0.0)
    assert matched is None
    assert evicted == []
    assert join.pending_labels == 1

    early = join.add_features("e1", _pending(at=1.0))
    assert early is label
    # the features were matched at once: nothing is kept for them
    assert join.pending_features == 0
    assert join.pending_labels == 0


def test_label_for_other_id_does_not_match() -> None:
    join = LabelJoin(window_s=10, max_pending=100)
    join.add_features("e1", _pending(at=0.0))
    matched, _ = join.add_label(_label("e2"), now=0.0)
    assert matched is None
    assert join.pending_features == 1
    assert join.pending_labels == 1


def test_resent_event_id_keeps_latest_features() -> None:
    join = LabelJoin(window_s=10, max_pending=100)
    join.add_features("e1", _pending(at=0.0, offset=1))
    latest = _pending(at=1.0, offset=2)
    join.add_features("e1", latest)
    assert join.pending_features == 1
    matched, _ = join.add_label(_label("e1"), now=2.0)
    assert matched is latest


def test_window_expiry_with_injected_time() -> None:
    join = LabelJoin(window_s=10, max_pending=100)
    join.add_features("old", _pending(at=0.0))
    join.add_features("new", _pending(at=8.0))
    old_label, new_label = _label("ghost-old"), _label("ghost-new")
    join.add_label(old_label, now=1.0)
    join.add_label(new_label, now=9.0)

    # nothing has waited 10 s yet
    assert join.expire(now=9.5) == []
    assert (join.pending_features, join.pending_labels) == (2, 2)

    # at t=12 "old" features (t=0) and "ghost-old" label (t=1) are past the window; the rest is not
    unmatched = join.expire(now=12.0)
    assert unmatched == [old_label]
    assert (join.pending_features, join.pending_labels) == (1, 1)
    assert join.features_expired_total == 1
    assert join.labels_unmatched_total == 1
    # expired features no longer match
    matched, _ = join.add_label(_label("old"), now=12.0)
    assert matched is None

    unmatched = join.expire(now=100.0)
    assert new_label in unmatched
    assert join.pending_features == 0
    assert join.features_expired_total == 2


def test_labels_within_window_still_match_after_expire() -> None:
    join = LabelJoin(window_s=10, max_pending=100)
    join.add_features("e1", _pending(at=0.0))
    assert join.expire(now=5.0) == []
    matched, _ = join.add_label(_label("e1"), now=5.0)
    assert matched is not None


def test_max_pending_evicts_oldest_features_and_counts_them() -> None:
    join = LabelJoin(window_s=1000, max_pending=3)
    for i in range(5):
        assert join.add_features(f"e{i}", _pending(at=float(i), offset=i)) is None
    assert join.pending_features == 3
    assert join.features_expired_total == 2
    # the two oldest are gone, the three newest remain
    assert join.add_label(_label("e0"), now=5.0)[0] is None
    assert join.add_label(_label("e1"), now=5.0)[0] is None
    for i in (2, 3, 4):
        matched, _ = join.add_label(_label(f"e{i}"), now=5.0)
        assert matched is not None
        assert matched.source.offset == i


def test_max_pending_evicts_oldest_labels_returns_and_counts_them() -> None:
    join = LabelJoin(window_s=1000, max_pending=2)
    labels = [_label(f"e{i}", offset=i) for i in range(4)]
    assert join.add_label(labels[0], now=0.0) == (None, [])
    assert join.add_label(labels[1], now=1.0) == (None, [])
    matched, evicted = join.add_label(labels[2], now=2.0)
    assert matched is None
    assert evicted == [labels[0]]
    matched, evicted = join.add_label(labels[3], now=3.0)
    assert evicted == [labels[1]]
    assert join.pending_labels == 2
    assert join.labels_unmatched_total == 2


def test_duplicate_label_returns_the_first_as_unmatched() -> None:
    join = LabelJoin(window_s=1000, max_pending=100)
    first, second = _label("e1", label=0, offset=1), _label("e1", label=1, offset=2)
    join.add_label(first, now=0.0)
    matched, evicted = join.add_label(second, now=1.0)
    assert matched is None
    assert evicted == [first]
    assert join.pending_labels == 1
    assert join.labels_unmatched_total == 1
    # the features meet the later label
    assert join.add_features("e1", _pending(at=2.0)) is second


def test_drain_returns_every_waiting_label_and_expires_features() -> None:
    join = LabelJoin(window_s=1000, max_pending=100)
    join.add_features("f1", _pending(at=0.0))
    join.add_features("f2", _pending(at=0.0))
    labels = [_label("l1"), _label("l2"), _label("l3")]
    for label in labels:
        join.add_label(label, now=0.0)

    drained = join.drain()
    assert drained == labels
    assert join.pending_features == 0
    assert join.pending_labels == 0
    assert join.features_expired_total == 2
    assert join.labels_unmatched_total == 3
    assert join.drain() == []
    assert join.labels_unmatched_total == 3


def _filled(n_features: int = 5, n_labels: int = 3) -> LabelJoin:
    join = LabelJoin(window_s=10, max_pending=100)
    for i in range(n_features):
        join.add_features(f"f{i}", _pending(at=float(i), offset=i, pred=i % 2))
    for i in range(n_labels):
        join.add_label(_label(f"l{i}", offset=i), now=float(i))
    return join


def test_snapshot_is_not_changed_by_the_live_join() -> None:
    join = _filled()
    snap = join.snapshot()
    join.add_label(_label("f0"), now=5.0)  # matches
    join.add_features("l0", _pending(at=5.0))  # matches
    join.add_features("new", _pending(at=5.0))
    join.expire(now=13.5)  # f1..f3 and l1, l2 expire
    assert (join.pending_features, join.pending_labels) == (2, 0)
    assert (snap.pending_features, snap.pending_labels) == (5, 3)
    assert snap.features_expired_total == 0
    assert snap.labels_unmatched_total == 0
    assert snap.next_expiry() == 10.0


def test_pickle_round_trip_keeps_entries_order_and_counters() -> None:
    join = _filled()
    join.expire(now=10.5)  # f0 and l0 go
    restored = pickle.loads(pickle.dumps(join.snapshot()))  # our own recovery store
    assert (restored.window_s, restored.max_pending) == (10, 100)
    assert (restored.features_expired_total, restored.labels_unmatched_total) == (1, 1)
    assert (restored.pending_features, restored.pending_labels) == (4, 2)
    # arrival order survives, so expiry goes oldest first after a resume too
    assert restored.next_expiry() == join.next_expiry() == 11.0
    matched, _ = restored.add_label(_label("f3"), now=11.0)
    assert matched == _pending(at=3.0, offset=3, pred=1)
    assert restored.add_features("l2", _pending(at=11.0)) == _label("l2", offset=2)
    unmatched = restored.expire(now=11.5)
    assert [label.id for label in unmatched] == ["l1"]
