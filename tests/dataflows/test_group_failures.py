"""GroupLogic never lets a model failure or a quiet stream lose an event."""

from __future__ import annotations

from typing import Any

import numpy as np

from dataflows.group import GroupLogic
from dataflows.records import DeadLetterReason, Event, Label, to_kafka
from learners.base import FloatArray, IntArray
from tests.dataflows.test_group import FakeClock, _dead, _event, _label, _labelled_batch, _logic, _model_events, _preds


class Broken:
    """Wraps a learner and fails on demand."""

    def __init__(self, inner: Any, *, predict: bool = False, learn: bool = False, nan: bool = False) -> None:
        self.inner, self.fail_predict, self.fail_learn, self.nan = inner, predict, learn, nan
        self.n_features, self.n_classes = inner.n_features, inner.n_classes

    def predict_proba(self, x: FloatArray) -> FloatArray:
        if self.fail_predict:
            msg = "boom"
            raise RuntimeError(msg)
        p: FloatArray = self.inner.predict_proba(x)
        if self.nan:
            p[0] = np.nan
        return p

    def learn(self, x: FloatArray, y: IntArray) -> None:
        if self.fail_learn:
            msg = "math range error"
            raise OverflowError(msg)
        self.inner.learn(x, y)


def _break(logic: GroupLogic, **how: bool) -> None:
    slot = logic.state.models[logic.state.champion]
    slot.learner = Broken(slot.learner, **how)  # type: ignore[assignment]


def test_champion_that_cannot_predict_dead_letters_the_events_and_keeps_going() -> None:
    logic = _logic(FakeClock())
    _break(logic, predict=True)
    out = logic.process(_labelled_batch(6))
    assert _preds(out) == []
    dead = _dead(out)
    assert [d.reason for d in dead] == [DeadLetterReason.MODEL_ERROR] * 6
    assert all(d.source is not None and d.original for d in dead)
    kinds = [e.type for e in _model_events(out)]
    assert kinds[0] == "predict_error"
    assert "RuntimeError: boom" in (_model_events(out)[0].error or "")
    # The model recovers: the next batch is served again.
    logic.state.models["m1"].learner.fail_predict = False  # type: ignore[attr-defined]
    assert len(_preds(logic.process(_labelled_batch(4, start=10)))) == 4


def test_non_finite_probabilities_count_as_a_predict_error() -> None:
    logic = _logic(FakeClock())
    _break(logic, nan=True)
    out = logic.process([_event("a", [1.0, 2.0]), _event("b", [2.0, 1.0])])
    assert _preds(out) == []
    assert len(_dead(out)) == 2
    assert "not finite" in (_model_events(out)[0].error or "")


def test_model_that_cannot_learn_reports_it_and_still_serves() -> None:
    logic = _logic(FakeClock())
    _break(logic, learn=True)
    out = logic.process(_labelled_batch(4))
    assert len(_preds(out)) == 4
    error, batch = _model_events(out)
    assert error.type == "learn_error"
    assert error.model_version == 0
    assert "OverflowError" in (error.error or "")
    # The batch is still reported: what was served and scored, and that nothing was learned.
    assert (batch.type, batch.n_predicted, batch.n_labelled, batch.n_learned) == ("batch", 4, 4, 0)
    assert batch.offsets == {}
    assert batch.accuracy is not None


def test_learner_returning_the_wrong_shape_is_a_predict_error() -> None:
    logic = _logic(FakeClock())
    slot = logic.state.models["m1"]
    inner = slot.learner

    class Short:
        n_features, n_classes = inner.n_features, inner.n_classes

        def predict_proba(self, x: FloatArray) -> FloatArray:
            return np.asarray(inner.predict_proba(x))[1:]

        def learn(self, x: FloatArray, y: IntArray) -> None:
            inner.learn(x, y)

    slot.learner = Short()  # type: ignore[assignment]
    out = logic.process(_labelled_batch(3))
    assert _preds(out) == []
    assert [d.reason for d in _dead(out)] == [DeadLetterReason.MODEL_ERROR] * 3
    assert "shape" in (_model_events(out)[0].error or "")


def test_events_the_champion_could_not_serve_still_meet_their_labels() -> None:
    logic = _logic(FakeClock())
    _break(logic, predict=True)
    logic.process([_label("late", 1)])  # the label comes first
    out = logic.process([_event("late", [2.0, 2.0])])
    assert [d.reason for d in _dead(out)] == [DeadLetterReason.MODEL_ERROR]
    batch = next(e for e in _model_events(out) if e.type == "batch")
    assert batch.n_labelled == 1
    assert logic.state.join.pending_labels == 0


def test_a_quiet_stream_still_expires_waiting_labels() -> None:
    clock = FakeClock(1_000.0)
    logic = _logic(clock, label_window_s=30.0)
    logic.process([_label("ghost", 1)])
    due = logic.notify_at()
    assert due is not None
    assert due.timestamp() == 1_030.0
    clock.t = 1_031.0
    out, discard = logic.on_notify()
    assert [d.reason for d in _dead(list(out))] == [DeadLetterReason.LABEL_UNMATCHED]
    assert discard is False
    assert logic.notify_at() is None


def test_model_event_keys_are_unique_per_batch() -> None:
    logic = _logic(FakeClock())
    keys: list[bytes] = []
    for start in range(0, 40, 10):
        unlabelled: list[Event | Label] = [_event(f"u{start + i}", [0.0, 1.0]) for i in range(3)]  # nothing to learn
        for record in _model_events(logic.process(unlabelled)):
            keys.append(to_kafka(record, "model-events", 0).key)
    assert len(keys) == len(set(keys)) == 4
