"""GroupLogic: test-then-train over micro-batches, with an injected clock and no Kafka."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from bytewax.operators import StatefulLogic

from dataflows.decode import FeatureSchema
from dataflows.flow import FlowConfig, Topics, new_group_state, resume_group_state
from dataflows.group import STATE_FORMAT, GroupLogic, Output
from dataflows.records import DeadLetter, DeadLetterReason, Event, Label, ModelEvent, Prediction, SourceRef
from learners import LearnerSpec

CLASSES: list[int | str] = ["neg", "pos"]
POS_X = [2.0, 2.0]
NEG_X = [-2.0, -2.0]


class FakeClock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _config(**kwargs: Any) -> FlowConfig:
    return FlowConfig(
        brokers="unused:9092",
        topics=Topics("events", "predictions", "dead-letters", "model-events", "labels"),
        schema=FeatureSchema(["a", "b"], CLASSES),
        learner=LearnerSpec("river-logreg"),
        **kwargs,
    )


def _logic(clock: FakeClock, *, drain_on_eof: bool = True, **kwargs: Any) -> GroupLogic:
    return GroupLogic(new_group_state(_config(**kwargs)), drain_on_eof=drain_on_eof, clock=clock)


def _event(event_id: str, x: Sequence[float], label: int | None = None, offset: int = 0, partition: int = 0) -> Event:
    return Event(event_id, list(x), label, SourceRef("events", partition, offset, 500 + offset))


def _label(event_id: str, label: int, offset: int = 0) -> Label:
    original = f'{{"id": "{event_id}", "label": {label}}}'.encode()
    return Label(event_id, label, SourceRef("labels", 0, offset, 700 + offset), original)


def _preds(out: Sequence[Output]) -> list[Prediction]:
    return [o for o in out if isinstance(o, Prediction)]


def _model_events(out: Sequence[Output]) -> list[ModelEvent]:
    return [o for o in out if isinstance(o, ModelEvent)]


def _dead(out: Sequence[Output]) -> list[DeadLetter]:
    return [o for o in out if isinstance(o, DeadLetter)]


def _labelled_batch(n: int, start: int = 0, jitter_seed: int = 0) -> list[Event | Label]:
    """Alternating separable examples: positives around (2, 2), negatives around (-2, -2)."""
    rng = np.random.default_rng(jitter_seed)
    batch: list[Event | Label] = []
    for i in range(start, start + n):
        y = i % 2
        centre = POS_X if y else NEG_X
        x = (np.asarray(centre) + rng.normal(0, 0.3, 2)).tolist()
        batch.append(_event(f"l{i}", x, y, offset=i))
    return batch


def test_every_event_gets_exactly_one_prediction_from_the_champion() -> None:
    clock = FakeClock(1_000.0)
    logic = _logic(clock)
    state = logic.state
    champion = state.models[state.champion]
    batch: list[Event | Label] = [
        _event("a", POS_X, 1, offset=1),
        _event("b", NEG_X, None, offset=2),
        _label("nobody", 1, offset=0),
        _event("c", POS_X, 0, offset=3),
        _event("d", NEG_X, None, offset=4),
    ]
    out = logic.process(batch)
    preds = _preds(out)
    assert sorted(p.id for p in preds) == ["a", "b", "c", "d"]
    for p in preds:
        assert p.model == champion.name == state.champion
        assert p.model_version == 0
        assert p.group == "default"
        assert p.predicted_ts_ms == 1_000_000
        assert p.prediction in CLASSES
        assert len(p.proba) == 2
        assert abs(sum(p.proba) - 1.0) < 1e-9
    by_id = {p.id: p for p in preds}
    assert by_id["b"].source == SourceRef("events", 0, 2, 502)
    assert by_id["b"].event_ts_ms == 502

    # the champion learned from the two labelled events: the next predictions carry the next version
    clock.t += 1
    out = logic.process([_event("e", POS_X, None, offset=5), _event("f", NEG_X, None, offset=6)])
    preds = _preds(out)
    assert [p.id for p in preds] == ["e", "f"]
    assert {p.model_version for p in preds} == {champion.version} == {1}


def test_batch_of_labels_only_predicts_nothing_and_learns_nothing() -> None:
    logic = _logic(FakeClock())
    out = logic.process([_label("later", 1)])
    assert _preds(out) == []
    (event,) = _model_events(out)
    assert event.n_predicted == 0
    assert event.n_learned == 0
    assert event.model_version == 0
    assert event.pending_labels == 1
    assert event.accuracy is None
    assert event.offsets == {}


def test_empty_batch_outputs_nothing() -> None:
    logic = _logic(FakeClock())
    assert logic.process([]) == []


def test_first_batch_is_predicted_before_learning() -> None:
    logic = _logic(FakeClock())
    batch: list[Event | Label] = [_event(f"p{i}", POS_X, 1, offset=i) for i in range(6)]
    out = logic.process(batch)

    preds = _preds(out)
    assert len(preds) == 6
    # untrained: no opinion, and argmax of a tie is the first class
    for p in preds:
        assert p.proba == [0.5, 0.5]
        assert p.prediction == "neg"
        assert p.model_version == 0

    (event,) = _model_events(out)
    assert event.type == "batch"
    assert event.model == "m1"
    assert event.model_version == 1
    assert event.n_predicted == 6
    assert event.n_learned == 6
    # the predictions above were all wrong: had the model learned first, they would have been right
    assert event.n_correct == 0
    assert event.accuracy == 0.0
    assert event.rolling_accuracy == 0.0

    # the model did learn: the same events are now predicted right, and scored so
    out = logic.process([_event(f"q{i}", POS_X, 1, offset=10 + i) for i in range(6)])
    preds = _preds(out)
    assert {p.prediction for p in preds} == {"pos"}
    (event,) = _model_events(out)
    assert event.n_correct == 6
    assert event.model_version == 2
    assert event.accuracy == 0.5


def test_n_correct_matches_the_published_predictions() -> None:
    clock = FakeClock()
    logic = _logic(clock)
    for k in range(6):
        batch = _labelled_batch(20, start=20 * k, jitter_seed=k)
        out = logic.process(batch)
        labels = {e.id: e.label for e in batch if isinstance(e, Event)}
        preds = _preds(out)
        expected = sum(CLASSES.index(p.prediction) == labels[p.id] for p in preds)
        (event,) = _model_events(out)
        assert event.n_correct == expected
        assert event.n_learned == 20
        clock.t += 1
    assert event.n_correct == 20  # it has learned the problem by now


def test_delayed_label_is_scored_with_the_prediction_made_at_prediction_time() -> None:
    clock = FakeClock(0.0)
    logic = _logic(clock, label_window_s=60.0)
    # t=0: an unlabelled event, predicted by the untrained model
    out = logic.process([_event("u", POS_X, None, offset=99)])
    (pred_u,) = _preds(out)
    assert pred_u.prediction == "neg"
    (event,) = _model_events(out)
    assert event.n_learned == 0
    assert event.pending_features == 1

    # t=1..5: the model learns that POS_X is "pos"
    for k in range(5):
        clock.t += 1
        logic.process(_labelled_batch(20, start=20 * k, jitter_seed=k))
    champion = logic.state.models["m1"]
    assert champion.learner.predict_proba(np.asarray([POS_X])).argmax() == 1
    version_before = champion.version

    # t=10: the label for "u" arrives; it is scored against "neg", not what the model says now
    clock.t = 10.0
    out = logic.process([_label("u", 1, offset=7)])
    (event,) = _model_events(out)
    assert event.n_predicted == 0
    assert event.n_learned == 1
    assert event.n_correct == 0
    assert event.pending_features == 0
    assert event.model_version == version_before + 1
    # the offsets are those of the event the model learned from, not of the label
    assert event.offsets == {"events/0": [99, 99]}
    assert _dead(out) == []


def test_label_before_its_event_joins_when_the_event_comes() -> None:
    clock = FakeClock(0.0)
    logic = _logic(clock, label_window_s=60.0)
    out = logic.process([_label("v", 1, offset=3)])
    (event,) = _model_events(out)
    assert event.pending_labels == 1
    assert event.n_learned == 0

    clock.t = 5.0
    out = logic.process([_event("v", POS_X, None, offset=42)])
    (pred,) = _preds(out)
    (event,) = _model_events(out)
    assert event.n_learned == 1
    assert event.n_correct == int(pred.prediction == "pos")
    assert event.pending_labels == 0
    assert event.pending_features == 0
    assert event.offsets == {"events/0": [42, 42]}


def test_event_and_its_label_in_the_same_batch_join() -> None:
    logic = _logic(FakeClock())
    out = logic.process([_label("w", 0, offset=1), _event("w", NEG_X, None, offset=8)])
    (event,) = _model_events(out)
    assert event.n_learned == 1
    assert event.pending_labels == 0
    assert event.pending_features == 0


def test_expired_label_becomes_label_unmatched_dead_letter() -> None:
    clock = FakeClock(0.0)
    logic = _logic(clock, label_window_s=10.0)
    ghost = _label("ghost", 1, offset=17)
    out = logic.process([ghost])
    assert _dead(out) == []

    clock.t = 5.0
    assert _dead(logic.process([_event("x", POS_X, None, offset=1)])) == []

    clock.t = 11.0
    out = logic.process([_event("y", POS_X, None, offset=2)])
    (dead,) = _dead(out)
    assert dead.reason is DeadLetterReason.LABEL_UNMATCHED
    assert dead.source == ghost.source
    assert dead.original == ghost.original
    assert "ghost" in dead.detail
    (event,) = _model_events(out)
    assert event.labels_unmatched_total == 1
    assert event.pending_labels == 0
    # the features of "x" (t=5) are still within the window
    assert event.pending_features == 2


def test_expired_label_is_dead_lettered_even_by_an_empty_batch() -> None:
    clock = FakeClock(0.0)
    logic = _logic(clock, label_window_s=10.0)
    logic.process([_label("ghost", 0)])
    clock.t = 30.0
    out = logic.process([])
    assert [type(o) for o in out] == [DeadLetter]


def test_expired_features_no_longer_join() -> None:
    clock = FakeClock(0.0)
    logic = _logic(clock, label_window_s=10.0)
    logic.process([_event("late", POS_X, None, offset=1)])
    clock.t = 20.0
    out = logic.process([_label("late", 1)])
    (event,) = _model_events(out)
    assert event.n_learned == 0
    assert event.features_expired_total == 1
    assert event.pending_labels == 1


def test_labels_evicted_by_max_pending_are_dead_lettered() -> None:
    logic = _logic(FakeClock(), max_pending=2)
    labels = [_label(f"g{i}", 1, offset=i) for i in range(4)]
    out = logic.process(list(labels))
    dead = _dead(out)
    assert [d.source for d in dead] == [labels[0].source, labels[1].source]
    assert all(d.reason is DeadLetterReason.LABEL_UNMATCHED for d in dead)
    (event,) = _model_events(out)
    assert event.pending_labels == 2
    assert event.labels_unmatched_total == 2


def test_model_event_offsets_cover_the_learned_events() -> None:
    clock = FakeClock()
    logic = _logic(clock)
    batch: list[Event | Label] = [
        _event("a", POS_X, 1, offset=12, partition=0),
        _event("b", NEG_X, 0, offset=10, partition=0),
        _event("c", POS_X, 1, offset=14, partition=0),
        _event("d", NEG_X, 0, offset=3, partition=1),
        _event("e", NEG_X, 0, offset=4, partition=1),
        _event("unlabelled", POS_X, None, offset=500, partition=0),
        _event("other", POS_X, None, offset=1, partition=2),
    ]
    out = logic.process(batch)
    (event,) = _model_events(out)
    assert event.n_learned == 5
    assert event.offsets == {"events/0": [10, 14], "events/1": [3, 4]}
    slot = logic.state.models["m1"]
    assert slot.lineage == {"events/0": [10, 14], "events/1": [3, 4]}

    clock.t += 1
    out = logic.process([_label("unlabelled", 1), _event("f", POS_X, 1, offset=20, partition=1)])
    (event,) = _model_events(out)
    assert event.offsets == {"events/0": [500, 500], "events/1": [20, 20]}
    assert slot.lineage == {"events/0": [10, 500], "events/1": [3, 20]}


def test_on_item_and_on_eof_retain_state() -> None:
    logic = _logic(FakeClock())
    out, discard = logic.on_item([_event("a", POS_X, None)])
    assert discard is StatefulLogic.RETAIN
    assert len(_preds(list(out))) == 1
    _, discard = logic.on_eof()
    assert discard is StatefulLogic.RETAIN


def test_on_eof_with_drain_dead_letters_waiting_labels() -> None:
    logic = _logic(FakeClock(), drain_on_eof=True)
    waiting = [_label("w1", 1, offset=1), _label("w2", 0, offset=2)]
    logic.process([*waiting, _event("f", POS_X, None)])
    out, _ = logic.on_eof()
    dead = list(out)
    assert all(isinstance(d, DeadLetter) for d in dead)
    assert [(d.reason, d.source, d.original) for d in _dead(dead)] == [
        (DeadLetterReason.LABEL_UNMATCHED, w.source, w.original) for w in waiting
    ]
    assert len(dead) == 2
    assert logic.state.join.pending_labels == 0
    assert logic.state.join.pending_features == 0


def test_on_eof_without_drain_keeps_waiting_labels() -> None:
    logic = _logic(FakeClock(), drain_on_eof=False)
    logic.process([_label("w1", 1), _event("f", POS_X, None)])
    out, _ = logic.on_eof()
    assert list(out) == []
    assert logic.state.join.pending_labels == 1
    assert logic.state.join.pending_features == 1
    # and the label still joins when its event comes after a resume
    out2 = logic.process([_event("w1", POS_X, None, offset=9)])
    (event,) = _model_events(out2)
    assert event.n_learned == 1


def test_snapshot_round_trips_through_pickle() -> None:
    clock = FakeClock(0.0)
    logic = _logic(clock, label_window_s=60.0)
    for k in range(3):
        logic.process(_labelled_batch(20, start=20 * k, jitter_seed=k))
        clock.t += 1
    logic.process([_event("pending-f", POS_X, None, offset=77), _label("pending-l", 1, offset=5)])

    data = pickle.dumps(logic.snapshot())
    restored_state = pickle.loads(data)
    restored = GroupLogic(restored_state, drain_on_eof=True, clock=clock)

    assert restored.state.champion == logic.state.champion
    assert restored.state.models["m1"].version == logic.state.models["m1"].version == 3
    assert restored.state.join.pending_features == 1
    assert restored.state.join.pending_labels == 1

    clock.t += 1
    batch = [*_labelled_batch(10, start=1000, jitter_seed=42), _label("pending-f", 1, offset=6)]
    batch.append(_event("pending-l", POS_X, None, offset=78))
    out_a = logic.process(list(batch))
    out_b = restored.process(list(batch))
    assert out_a == out_b
    assert len(_preds(out_a)) == 11
    (event,) = _model_events(out_b)
    assert event.n_learned == 12  # 10 inline + both pending halves joined
    assert event.accuracy == _model_events(out_a)[0].accuracy


def test_resume_without_a_snapshot_starts_a_new_group() -> None:
    state = resume_group_state(None, _config())
    assert state.features == ["a", "b"]
    assert state.classes == CLASSES
    assert state.format == STATE_FORMAT
    assert list(state.models) == [state.champion]


def test_resume_keeps_a_snapshot_that_fits() -> None:
    clock = FakeClock()
    logic = _logic(clock)
    logic.process([_event("e1", POS_X, label=1), _event("e2", NEG_X, label=0)])
    restored = pickle.loads(pickle.dumps(logic.snapshot()))  # our own snapshot
    resumed = resume_group_state(restored, _config())
    assert resumed is restored
    assert resumed.models[resumed.champion].version == 1


def test_resume_refuses_a_snapshot_for_other_features() -> None:
    state = new_group_state(_config())
    other = FlowConfig(
        brokers="unused:9092",
        topics=Topics("events", "predictions", "dead-letters", "model-events", "labels"),
        schema=FeatureSchema(["b", "a"], CLASSES),
        learner=LearnerSpec("river-logreg"),
    )
    with pytest.raises(ValueError, match=r"made for features \['a', 'b'\].*features \['b', 'a'\]"):
        resume_group_state(state, other)


def test_resume_refuses_a_snapshot_for_another_group() -> None:
    state = new_group_state(_config())
    with pytest.raises(ValueError, match="group 'other'"):
        resume_group_state(state, _config(group="other"))


def test_resume_refuses_a_snapshot_of_an_older_format() -> None:
    state = new_group_state(_config())
    del state.__dict__["format"]  # what unpickling a snapshot written before the field existed gives
    with pytest.raises(ValueError, match=f"snapshot format None, this Headwater reads format {STATE_FORMAT}"):
        resume_group_state(state, _config())


def test_snapshot_is_not_changed_by_later_batches() -> None:
    clock = FakeClock(0.0)
    logic = _logic(clock, label_window_s=60.0)
    logic.process(_labelled_batch(20, jitter_seed=1))
    logic.process([_event("waiting-f", POS_X, None, offset=50), _label("waiting-l", 0, offset=3)])
    snap = logic.snapshot()
    probe = np.array([POS_X, NEG_X, [0.5, -0.5]])
    before = snap.models["m1"].learner.predict_proba(probe)

    clock.t += 1
    logic.process([*_labelled_batch(30, start=100, jitter_seed=2), _label("waiting-f", 1, offset=4)])
    logic.process(
        [_event("waiting-l", NEG_X, None, offset=51), *(_event(f"new{i}", NEG_X, None, 52 + i) for i in range(2))]
    )

    assert logic.state.models["m1"].version == 3  # batches 1, 3 and 4 had labelled examples
    assert logic.state.join.pending_features == 2  # new0, new1
    assert snap.models["m1"].version == 1
    assert snap.models["m1"].score.snapshot().n == logic.state.models["m1"].score.snapshot().n - 32
    assert snap.join.pending_features == 1  # still waiting-f
    assert snap.join.pending_labels == 1  # still waiting-l
    assert snap.batches == 2
    np.testing.assert_array_equal(snap.models["m1"].learner.predict_proba(probe), before)


def test_without_a_labels_topic_unlabelled_features_are_not_kept() -> None:
    clock = FakeClock(0.0)
    unlabelled: list[Event | Label] = [_event(f"u{i}", POS_X, None, offset=i) for i in range(10)]
    with_topic = _logic(clock)
    without = GroupLogic(new_group_state(_config()), drain_on_eof=True, delayed_labels=False, clock=clock)
    assert len(_preds(with_topic.process(list(unlabelled)))) == 10
    assert len(_preds(without.process(list(unlabelled)))) == 10
    assert with_topic.state.join.pending_features == 10
    assert without.state.join.pending_features == 0
    # inline labels are still learned
    (event,) = _model_events(without.process(_labelled_batch(8, start=100)))
    assert event.n_learned == 8
