"""The train step on its own thread: hooks hand over in order, a snapshot holds everything handed
before it, the end of the input waits, and a failure reaches the worker."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from dataflows.train.step import TrainLogic, TrainThread


class FakeLogic:
    """Records what it was handed, on which thread; each batch takes a while, as learning does."""

    def __init__(self, delay_s: float = 0.02) -> None:
        self.seen: list[Any] = []
        self.threads: set[int] = set()
        self.delay_s = delay_s
        self.notified = 0
        self.wake: datetime | None = None
        self.eofs = 0

    def on_item(self, value: Any) -> tuple[list[Any], bool]:
        self.threads.add(threading.get_ident())
        time.sleep(self.delay_s)
        if value == "boom":
            raise ValueError("a bad batch")
        self.seen.append(value)
        return [f"report {value}"], False

    def on_notify(self) -> tuple[list[Any], bool]:
        self.notified += 1
        self.wake = None
        return ["woken"], False

    def notify_at(self) -> datetime | None:
        return self.wake

    def on_eof(self) -> tuple[list[Any], bool]:
        self.eofs += 1
        return ["eof"], False

    def snapshot(self) -> Any:
        return list(self.seen)


def _thread(logic: FakeLogic, *, recovery: bool = True) -> TrainThread:
    return TrainThread(lambda: cast(TrainLogic, logic), group="g", recovery=recovery)


def test_the_worker_does_not_wait_and_a_snapshot_holds_everything_handed_before_it() -> None:
    logic = FakeLogic(delay_s=0.05)
    step = _thread(logic)
    started = time.perf_counter()
    for i in range(4):
        out, _ = step.on_item(i)  # type: ignore[arg-type]
    assert time.perf_counter() - started < 0.1  # 4 batches of 50 ms each: none waited for
    assert list(out) == []  # nothing done yet when handed over
    assert cast(Any, step.snapshot()) == [0, 1, 2, 3]  # the barrier: every batch handed before it, in order
    assert threading.get_ident() not in logic.threads
    out, _ = step.on_notify()
    assert list(cast(Any, out)) == [f"report {i}" for i in range(4)]
    assert step.notify_at() is not None  # the worker keeps looking for what the thread produces


def test_the_end_of_the_input_waits_for_the_last_batch() -> None:
    logic = FakeLogic(delay_s=0.05)
    step = _thread(logic)
    step.on_item("a")  # type: ignore[arg-type]
    out, _ = step.on_eof()
    assert list(cast(Any, out)) == ["report a", "eof"]
    # Bytewax calls on_eof again at each later activation: once ended, nothing more is asked.
    assert step.notify_at() is None
    assert list(step.on_eof()[0]) == []
    assert logic.eofs == 1


def test_the_logic_is_woken_when_it_asked_to_be() -> None:
    logic = FakeLogic(delay_s=0.0)
    logic.wake = datetime.now(UTC) + timedelta(milliseconds=20)
    step = _thread(logic)
    deadline = time.monotonic() + 5
    got: list[Any] = []
    while "woken" not in got and time.monotonic() < deadline:
        got.extend(step.on_notify()[0])
        time.sleep(0.005)
    assert "woken" in got, "the thread never called on_notify at the time the logic asked"


def test_without_a_recovery_store_a_snapshot_does_not_wait() -> None:
    logic = FakeLogic(delay_s=0.2)
    step = _thread(logic, recovery=False)
    step.on_item(1)  # type: ignore[arg-type]
    started = time.perf_counter()
    assert step.snapshot() is None
    assert time.perf_counter() - started < 0.1


def test_a_failure_on_the_thread_stops_the_flow_at_the_next_hook() -> None:
    step = _thread(FakeLogic(delay_s=0.0))
    step.on_item("boom")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="a bad batch"):
        step.snapshot()
    with pytest.raises(RuntimeError, match="failed on its thread"):
        step.on_item(1)  # type: ignore[arg-type]


def test_a_failing_start_is_raised_on_the_worker() -> None:
    def build() -> TrainLogic:
        raise ValueError("the snapshot was made for features [a]")

    with pytest.raises(ValueError, match="made for features"):
        TrainThread(build, group="g", recovery=True)
