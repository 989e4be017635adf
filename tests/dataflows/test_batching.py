"""Micro-batching closes a batch at max_size, or max_wait after its *first* item."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

from dataflows.flow import MicroBatchLogic

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WAIT = timedelta(milliseconds=20)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_deadline_is_set_by_the_first_item_and_does_not_move() -> None:
    clock = Clock()
    logic: MicroBatchLogic[int] = MicroBatchLogic(None, max_size=100, max_wait=WAIT, now=clock)
    out, discard = logic.on_batch([1])
    assert (list(out), discard) == ([], False)
    for i in range(2, 6):  # a steady trickle must not push the deadline back
        clock.now += timedelta(milliseconds=5)
        logic.on_batch([i])
    assert logic.notify_at() == T0 + WAIT
    out, discard = logic.on_notify()
    assert (list(out), discard) == ([[1, 2, 3, 4, 5]], True)


def test_full_batches_leave_at_once_and_the_rest_starts_a_new_window() -> None:
    clock = Clock()
    logic: MicroBatchLogic[int] = MicroBatchLogic(None, max_size=3, max_wait=WAIT, now=clock)
    clock.now += timedelta(milliseconds=7)
    out, discard = logic.on_batch(list(range(8)))
    assert list(out) == [[0, 1, 2], [3, 4, 5]]
    assert discard is False
    assert logic.notify_at() == clock.now + WAIT
    out, discard = logic.on_eof()
    assert (list(out), discard) == ([[6, 7]], True)


def test_exactly_full_discards_the_state() -> None:
    logic: MicroBatchLogic[int] = MicroBatchLogic(None, max_size=2, max_wait=WAIT, now=Clock())
    out, discard = logic.on_batch([1, 2])
    assert (list(out), discard) == ([[1, 2]], True)


def test_snapshot_resumes_the_waiting_items_and_deadline() -> None:
    logic: MicroBatchLogic[int] = MicroBatchLogic(None, max_size=10, max_wait=WAIT, now=Clock())
    logic.on_batch([1, 2])
    state = pickle.loads(pickle.dumps(logic.snapshot()))
    logic.on_batch([3])  # the snapshot is a copy, not a view
    resumed: MicroBatchLogic[int] = MicroBatchLogic(state, max_size=10, max_wait=WAIT, now=Clock())
    assert resumed.notify_at() == T0 + WAIT
    out, _ = resumed.on_notify()
    assert list(out) == [[1, 2]]


def test_weighed_items_close_a_batch_by_what_they_hold_and_are_never_split() -> None:
    clock = Clock()
    logic: MicroBatchLogic[list[int]] = MicroBatchLogic(None, max_size=5, max_wait=WAIT, now=clock, weigh=len)
    out, discard = logic.on_batch([[1, 2], [3]])
    assert (list(out), discard) == ([], False)
    assert logic.notify_at() == T0 + WAIT
    clock.now += timedelta(milliseconds=5)
    out, discard = logic.on_batch([[4, 5, 6], [7], [8, 9, 10, 11, 12]])
    assert list(out) == [[[1, 2], [3], [4, 5, 6]], [[7], [8, 9, 10, 11, 12]]]
    assert discard is True
    out, discard = logic.on_batch([[13]])  # a new batch: a new deadline, from its first item
    assert logic.notify_at() == clock.now + WAIT
    assert list(logic.on_notify()[0]) == [[[13]]]
