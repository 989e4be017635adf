"""Serving: every event is predicted by a frozen model on the board, named by version and route,
and a model that fails never takes the worker down."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgspec
import numpy as np
import pytest

from dataflows.config import CandidateSpec
from dataflows.records import DeadLetterReason, Event, Label, SourceRef, encode_dead_letter
from dataflows.serve import CANARY, CHAMPION, Served, ServingBoard, ServingTable, Unavailable, serve_batch
from evaluators import canary_bucket
from learners import LearnerSpec
from tests.dataflows.helpers import (
    CLASSES,
    GROUP,
    Broken,
    FakeClock,
    Stream,
    Wrapped,
    config,
    event,
    label,
    make_group,
    table_with,
    trained_learner,
)

PROBE = np.array([[2.0, 0.5], [-2.0, 0.5], [0.1, -1.0], [-0.3, 3.0]])


def _keys(n: int) -> list[Event | Label]:
    return [event(f"user-{i}", [float(i % 7) - 3.0, 1.0], offset=i) for i in range(n)]


def test_predictions_name_the_champions_version_and_the_champion_route(tmp_path: Path) -> None:
    """Each event gets one prediction from the installed champion: its registry version, route
    "champion", a class from the schema, probabilities that sum to one, and where it came from."""
    group = make_group(config(), tmp_path, clock=FakeClock(1_000.0))
    batch: list[Event | Label] = [
        event("a", [1.0, 2.0], 1, offset=10),
        label("late", 0, offset=3),
        event("b", [-1.0, 0.0], None, offset=11),
    ]
    out = group.serve(batch)

    assert [p.id for p in out.predictions] == ["a", "b"]
    for p in out.predictions:
        assert (p.group, p.version, p.route) == (GROUP, "default/1", "champion")
        assert p.prediction in CLASSES
        assert p.proba == pytest.approx([0.5, 0.5])  # untrained: no opinion yet
        assert p.predicted_ts_ms == 1_000_000
    assert out.predictions[1].source == SourceRef("events", 0, 11, 511)
    assert out.predictions[1].event_ts_ms == 511
    assert (out.dead_letters, out.errors) == ([], [])
    # the batch goes on to training with the labels and what each event was given
    assert [e.id for e in out.batch.events] == ["a", "b"]
    assert [lab.id for lab in out.batch.labels] == ["late"]
    assert out.batch.routes == [CHAMPION, CHAMPION]
    assert out.batch.predicted == [0, 0]


def test_a_batch_of_labels_only_serves_nothing_and_passes_the_labels_on() -> None:
    table = table_with(trained_learner())
    out = serve_batch(table, [label("x", 1)], CLASSES, 5.0)
    assert (out.predictions, out.dead_letters, out.errors) == ([], [], [])
    assert [lab.id for lab in out.batch.labels] == ["x"]
    assert out.batch.events == []


def test_a_canary_serves_about_its_share_of_keys_and_keeps_them_when_the_share_rises() -> None:
    """Routing is sticky: a key is the canary's iff its bucket is below the share, so raising the
    share only adds keys. Canary predictions name the canary's version."""
    champion, candidate = trained_learner(), trained_learner(seed=5)
    keys = _keys(2_000)
    at_10 = serve_batch(table_with(champion, candidate, 0.10), keys, CLASSES, 0.0)
    at_30 = serve_batch(table_with(champion, candidate, 0.30), keys, CLASSES, 0.0)

    canary_10 = {p.id for p in at_10.predictions if p.route == "canary"}
    canary_30 = {p.id for p in at_30.predictions if p.route == "canary"}
    # 2,000 draws: the standard deviation of the count is about 13 at 10%, 20 at 30%
    assert 140 <= len(canary_10) <= 260
    assert 520 <= len(canary_30) <= 680
    assert canary_10 <= canary_30
    assert canary_10 == {f"user-{i}" for i in range(2_000) if canary_bucket(f"user-{i}", 0) < 0.10}
    for p in at_30.predictions:
        assert p.version == ("default/2" if p.route == "canary" else "default/1")
    assert at_30.batch.routes == [CANARY if p.route == "canary" else CHAMPION for p in at_30.predictions]
    # a share of 0 routes nothing to the canary, even when one is on the board
    assert {p.route for p in serve_batch(table_with(champion, candidate, 0.0), keys, CLASSES, 0.0).predictions} == {
        "champion"
    }


def test_the_canary_predicts_with_its_own_model() -> None:
    """Routed events are predicted by the canary's learner, the others by the champion's."""
    knows_a = trained_learner()
    knows_the_opposite = trained_learner(concept=lambda x: 1 - (x[:, 0] > 0).astype(np.int64))
    out = serve_batch(table_with(knows_a, knows_the_opposite, 0.5), _keys(200), CLASSES, 0.0)
    for p, e in zip(out.predictions, out.batch.events, strict=True):
        positive = e.x[0] > 0
        expected = (not positive) if p.route == "canary" else positive
        assert p.prediction == ("pos" if expected else "neg"), (p.id, p.route, e.x)


def test_a_failing_canary_falls_back_to_the_champion_and_reports_the_error() -> None:
    champion = trained_learner()
    out = serve_batch(table_with(champion, Broken(trained_learner(), predict=True), 0.5), _keys(100), CLASSES, 0.0)
    assert len(out.predictions) == 100
    assert {(p.route, p.version) for p in out.predictions} == {("champion", "default/1")}
    assert out.batch.routes == [CHAMPION] * 100
    assert out.errors == [("canary", "default/2", "RuntimeError: boom")]
    assert out.dead_letters == []


class _Busy(Wrapped):
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        msg = "busy"
        raise Unavailable(msg)


def test_a_live_model_that_cannot_answer_now_leaves_its_events_to_the_champion_without_an_error() -> None:
    table = dataclasses.replace(table_with(trained_learner()), fresh=Served("default/2", _Busy(trained_learner())))
    out = serve_batch(table, _keys(40), CLASSES, 0.0)
    assert {(p.route, p.version) for p in out.predictions} == {("champion", "default/1")}
    assert len(out.predictions) == 40 and not out.dead_letters
    assert out.errors == []  # busy is not a failure: the route in each prediction tells who served


def test_a_failing_champion_dead_letters_its_events_with_the_decoded_event() -> None:
    """A champion that raises never kills the worker: each of its events becomes a model_error
    dead letter keyed by its source offset, whose payload is the decoded event. Canary events
    are still served."""
    table = table_with(Broken(trained_learner(), predict=True), trained_learner(), 0.3)
    batch = _keys(50)
    out = serve_batch(table, batch, CLASSES, 0.0)

    canary_ids = {e.id for e in batch if isinstance(e, Event) and canary_bucket(e.id, 0) < 0.3}
    assert {p.id for p in out.predictions} == canary_ids
    assert {p.route for p in out.predictions} == {"canary"}
    assert out.errors == [("champion", "default/1", "RuntimeError: boom")]
    by_id = {e.id: e for e in batch if isinstance(e, Event)}
    assert len(out.dead_letters) == 50 - len(canary_ids)
    for d in out.dead_letters:
        payload = msgspec.json.decode(d.original or b"")
        e = by_id[payload["id"]]
        assert d.reason is DeadLetterReason.MODEL_ERROR
        assert payload == {"id": e.id, "features": e.x, "label_index": None}
        assert d.source == e.source
        assert "'default/1'" in d.detail
        wire = encode_dead_letter(d, "dead-letters", 0)
        assert wire.key == f"events/0/{e.source.offset}".encode()
    # the events still go on to training, marked as not served
    predicted = dict(zip([e.id for e in out.batch.events], out.batch.predicted, strict=True))
    assert {i for i, c in predicted.items() if c == -1} == set(by_id) - canary_ids


def test_the_dead_letter_of_a_labelled_event_keeps_its_label() -> None:
    out = serve_batch(table_with(Broken(trained_learner(), predict=True)), [event("k", [1.0, 2.0], 1)], CLASSES, 0.0)
    (d,) = out.dead_letters
    assert msgspec.json.decode(d.original or b"") == {"id": "k", "features": [1.0, 2.0], "label_index": 1}


@pytest.mark.parametrize(("how", "said"), [("nan", "not finite"), ("short", "shape")])
def test_wrong_shape_or_non_finite_probabilities_are_a_failure(how: str, said: str) -> None:
    """A learner that returns NaN, or too few rows, does not serve: its events are dead-lettered."""
    broken = Broken(trained_learner(), nan=how == "nan", short=how == "short")
    out = serve_batch(table_with(broken), _keys(5), CLASSES, 0.0)
    assert out.predictions == []
    assert [d.reason for d in out.dead_letters] == [DeadLetterReason.MODEL_ERROR] * 5
    ((route, version, error),) = out.errors
    assert (route, version) == ("champion", "default/1")
    assert said in error


def test_the_board_serves_the_table_last_published_and_refuses_an_unknown_group() -> None:
    board = ServingBoard()
    with pytest.raises(LookupError, match="no serving table for group 'default'"):
        board.current(GROUP)
    first = table_with(trained_learner())
    assert board.publish(first).seq == 1
    second = ServingTable(GROUP, Served("default/9", trained_learner(seed=3)))
    published = board.publish(second)
    assert board.current(GROUP) is published
    assert (published.seq, published.champion) == (2, second.champion)


def test_a_followed_table_serves_only_if_it_is_newer_than_the_boards() -> None:
    """Tables from another process (the serving-table topic) come with their number: one this
    board already has, or an older one, is ignored; a newer one serves, and numbering goes on
    from it."""
    board = ServingBoard()
    board.publish(table_with(trained_learner()))
    mine = board.publish(ServingTable(GROUP, Served("default/2", trained_learner(seed=2))))
    assert not board.follow(dataclasses.replace(mine, champion=Served("default/1", trained_learner())))
    assert board.current(GROUP) is mine
    theirs = ServingTable(GROUP, Served("default/5", trained_learner(seed=5)), seq=7)
    assert board.follow(theirs)
    assert board.current(GROUP) is theirs
    assert board.publish(ServingTable(GROUP, Served("default/6", trained_learner(seed=6)))).seq == 8


def test_the_served_champion_is_never_taught(tmp_path: Path) -> None:
    """The model that serves is frozen: after many batches the train step learned, the board's
    champion answers a probe exactly as before, while the candidate has changed. After a promotion
    the board holds a copy of the candidate that its lane's later learning does not reach."""
    cfg = config(candidates=(CandidateSpec("alt", LearnerSpec("river-logreg", {"lr": 0.1})),))
    group = make_group(cfg, tmp_path)
    champion = group.table.champion.learner
    before = champion.predict_proba(PROBE)
    stream = Stream(1)
    group.run(stream, 3)
    assert group.table.champion.version == "default/1"
    np.testing.assert_array_equal(champion.predict_proba(PROBE), before)
    assert not np.allclose(group.logic.lanes["alt"].learner.predict_proba(PROBE), before)

    for _ in range(20):
        group.run(stream, 1)
        if group.table.champion.version != "default/1":
            break
    promoted = group.table.champion
    assert promoted.version == "default/2"
    assert promoted.learner is not group.logic.lanes["alt"].learner
    at_promotion = promoted.learner.predict_proba(PROBE)
    group.run(stream, 3)  # fewer examples than a new trial needs: no further promotion
    assert group.table.champion.version == "default/2"
    np.testing.assert_array_equal(group.table.champion.learner.predict_proba(PROBE), at_promotion)
    assert not np.allclose(group.logic.lanes["alt"].learner.predict_proba(PROBE), at_promotion)
