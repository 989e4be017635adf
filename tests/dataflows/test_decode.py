"""Decoder: every dead-letter reason it can produce, and the records it makes from valid input."""

from __future__ import annotations

from typing import Any

import pytest

from dataflows.decode import Decoder, FeatureSchema, RawMessage
from dataflows.records import DeadLetter, DeadLetterReason, Event, Label, SourceRef

EVENTS = "t.events"
LABELS = "t.labels"
R = DeadLetterReason


def _schema(**kwargs: Any) -> FeatureSchema:
    return FeatureSchema(features=["a", "b", "c"], classes=[0, 1], **kwargs)


def _decoder(schema: FeatureSchema | None = None) -> Decoder:
    return Decoder(schema or _schema(), EVENTS, LABELS)


def _msg(
    value: bytes | None,
    topic: str = EVENTS,
    *,
    key: bytes | None = b"the-key",
    partition: int = 3,
    offset: int = 41,
    timestamp: tuple[int, int] | None = (1, 1_700_000_000_000),
) -> RawMessage:
    return RawMessage(key=key, value=value, topic=topic, partition=partition, offset=offset, timestamp=timestamp)


# (case id, topic, value, expected reason)
BAD_INPUTS: list[tuple[str, str, bytes | None, DeadLetterReason]] = [
    ("bad_json/garbage", EVENTS, b"not json", R.BAD_JSON),
    ("bad_json/truncated", EVENTS, b'{"id": "e1", "features": [1, 2', R.BAD_JSON),
    ("bad_json/trailing", EVENTS, b'{"id": "e1", "features": [1, 2, 3]} junk', R.BAD_JSON),
    ("bad_json/nan_literal", EVENTS, b'{"id": "e1", "features": [1, 2, NaN]}', R.BAD_JSON),
    ("bad_json/label_topic", LABELS, b"{nope", R.BAD_JSON),
    ("empty_payload/none", EVENTS, None, R.EMPTY_PAYLOAD),
    ("empty_payload/empty_bytes", EVENTS, b"", R.EMPTY_PAYLOAD),
    ("empty_payload/label_topic", LABELS, b"", R.EMPTY_PAYLOAD),
    ("missing_field/id", EVENTS, b'{"features": [1, 2, 3]}', R.MISSING_FIELD),
    ("missing_field/features", EVENTS, b'{"id": "e1"}', R.MISSING_FIELD),
    ("missing_field/feature_key", EVENTS, b'{"id": "e1", "features": {"a": 1, "b": 2}}', R.MISSING_FIELD),
    (
        "missing_field/feature_key_with_extra",
        EVENTS,
        b'{"id": "e1", "features": {"a": 1, "b": 2, "zz": 3}}',
        R.MISSING_FIELD,
    ),
    ("missing_field/label_topic_label", LABELS, b'{"id": "e1"}', R.MISSING_FIELD),
    (
        "extra_field/top_level",
        EVENTS,
        b'{"id": "e1", "features": [1, 2, 3], "bogus": 1}',
        R.EXTRA_FIELD,
    ),
    (
        "extra_field/feature_key",
        EVENTS,
        b'{"id": "e1", "features": {"a": 1, "b": 2, "c": 3, "d": 4}}',
        R.EXTRA_FIELD,
    ),
    ("extra_field/label_topic", LABELS, b'{"id": "e1", "label": 1, "bogus": 2}', R.EXTRA_FIELD),
    ("wrong_type/bool_feature_array", EVENTS, b'{"id": "e1", "features": [1, 2, true]}', R.WRONG_TYPE),
    (
        "wrong_type/bool_feature_object",
        EVENTS,
        b'{"id": "e1", "features": {"a": 1, "b": false, "c": 3}}',
        R.WRONG_TYPE,
    ),
    ("wrong_type/string_feature", EVENTS, b'{"id": "e1", "features": [1, "2", 3]}', R.WRONG_TYPE),
    ("wrong_type/id_number", EVENTS, b'{"id": 7, "features": [1, 2, 3]}', R.WRONG_TYPE),
    ("wrong_type/features_string", EVENTS, b'{"id": "e1", "features": "1,2,3"}', R.WRONG_TYPE),
    ("wrong_type/top_level_array", EVENTS, b"[1, 2, 3]", R.WRONG_TYPE),
    ("wrong_type/float_label", EVENTS, b'{"id": "e1", "features": [1, 2, 3], "label": 1.0}', R.WRONG_TYPE),
    ("wrong_type/label_topic_id", LABELS, b'{"id": 5, "label": 1}', R.WRONG_TYPE),
    ("wrong_dimension/too_many", EVENTS, b'{"id": "e1", "features": [1, 2, 3, 4]}', R.WRONG_DIMENSION),
    ("wrong_dimension/too_few", EVENTS, b'{"id": "e1", "features": [1, 2]}', R.WRONG_DIMENSION),
    ("wrong_dimension/empty", EVENTS, b'{"id": "e1", "features": []}', R.WRONG_DIMENSION),
    ("non_finite/array", EVENTS, b'{"id": "e1", "features": [1, 2, 1e999]}', R.NON_FINITE),
    ("non_finite/negative", EVENTS, b'{"id": "e1", "features": [-1e999, 2, 3]}', R.NON_FINITE),
    ("non_finite/object", EVENTS, b'{"id": "e1", "features": {"a": 1, "b": 1e999, "c": 3}}', R.NON_FINITE),
    ("non_finite/huge_integer", EVENTS, b'{"id": "e1", "features": [1, 2, 1' + b"0" * 400 + b"]}", R.NON_FINITE),
    ("wrong_type/ts_ms_string", EVENTS, b'{"id": "e1", "features": [1, 2, 3], "ts_ms": "5"}', R.WRONG_TYPE),
    ("missing_field/all_feature_keys", EVENTS, b'{"id": "e1", "features": {}}', R.MISSING_FIELD),
    ("unknown_class/int", EVENTS, b'{"id": "e1", "features": [1, 2, 3], "label": 2}', R.UNKNOWN_CLASS),
    (
        "unknown_class/string_for_int",
        EVENTS,
        b'{"id": "e1", "features": [1, 2, 3], "label": "1"}',
        R.UNKNOWN_CLASS,
    ),
    ("unknown_class/label_topic", LABELS, b'{"id": "e1", "label": -1}', R.UNKNOWN_CLASS),
    ("bad_value/empty_id", EVENTS, b'{"id": "", "features": [1, 2, 3]}', R.BAD_VALUE),
    ("bad_value/label_topic_empty_id", LABELS, b'{"id": "", "label": 1}', R.BAD_VALUE),
    ("bad_value/long_id", EVENTS, b'{"id": "' + b"i" * 257 + b'", "features": [1, 2, 3]}', R.BAD_VALUE),
    ("bad_value/label_topic_long_id", LABELS, b'{"id": "' + b"i" * 257 + b'", "label": 1}', R.BAD_VALUE),
    ("bad_value/negative_ts_ms", EVENTS, b'{"id": "e1", "features": [1, 2, 3], "ts_ms": -1}', R.BAD_VALUE),
    ("out_of_range/huge_finite", EVENTS, b'{"id": "e1", "features": [1, 2, 1e300]}', R.OUT_OF_RANGE),
    ("out_of_range/negative", EVENTS, b'{"id": "e1", "features": {"a": -2e9, "b": 0, "c": 0}}', R.OUT_OF_RANGE),
]


@pytest.mark.parametrize(
    ("topic", "value", "reason"),
    [pytest.param(t, v, r, id=case) for case, t, v, r in BAD_INPUTS],
)
def test_bad_input_becomes_dead_letter_with_reason(topic: str, value: bytes | None, reason: DeadLetterReason) -> None:
    out = _decoder()(_msg(value, topic))
    assert isinstance(out, DeadLetter), out
    assert out.reason is reason, out.detail
    assert out.detail  # says what went wrong


@pytest.mark.parametrize(
    ("topic", "value", "reason"),
    [pytest.param(t, v, r, id=case) for case, t, v, r in BAD_INPUTS],
)
def test_dead_letter_keeps_original_bytes_key_and_source(
    topic: str, value: bytes | None, reason: DeadLetterReason
) -> None:
    msg = _msg(value, topic, key=b"k-" + reason.value.encode(), partition=5, offset=12345, timestamp=(1, 99))
    out = _decoder()(msg)
    assert isinstance(out, DeadLetter)
    assert out.original == value
    assert out.original_key == msg.key
    assert out.source == SourceRef(topic, 5, 12345, 99)


def test_every_decoder_reason_is_covered() -> None:
    # LABEL_UNMATCHED comes from the join, MODEL_ERROR from the group step and BAD_COMMAND from the
    # control topic's decoder (tests/dataflows/test_control.py), not from decoding events.
    covered = {reason for *_, reason in BAD_INPUTS} | {R.OVERSIZED} | {c[2] for c in BAD_CATEGORICAL}
    assert covered == set(R) - {R.LABEL_UNMATCHED, R.MODEL_ERROR, R.BAD_COMMAND}


@pytest.mark.parametrize("topic", [EVENTS, LABELS])
def test_oversized_payload(topic: str) -> None:
    schema = _schema(max_event_bytes=40)
    value = b'{"id": "e1", "features": [1.0, 2.0, 3.0], "label": 1}'
    assert len(value) > 40
    out = _decoder(schema)(_msg(value, topic))
    assert isinstance(out, DeadLetter)
    assert out.reason is R.OVERSIZED
    assert out.original == value
    assert out.original_key == b"the-key"
    assert "40" in out.detail


def test_payload_at_the_size_limit_is_accepted() -> None:
    value = b'{"id": "e1", "features": [1, 2, 3]}'
    out = _decoder(_schema(max_event_bytes=len(value)))(_msg(value))
    assert isinstance(out, Event)


def test_dead_letter_without_key() -> None:
    out = _decoder()(_msg(b"garbage", key=None))
    assert isinstance(out, DeadLetter)
    assert out.original_key is None
    assert out.original == b"garbage"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b'{"id": "e1", "features": [1, 2, 3], "label": true}', id="event_inline_label"),
        pytest.param(b'{"id": "e1", "features": [1, 2, 3], "label": false}', id="event_inline_false"),
    ],
)
def test_json_bool_never_passes_for_a_class_inline(value: bytes) -> None:
    out = _decoder()(_msg(value))
    assert isinstance(out, DeadLetter)
    # msgspec rejects a bool for `int | str` before the class lookup runs.
    assert out.reason in {R.WRONG_TYPE, R.UNKNOWN_CLASS}


def test_json_true_never_passes_for_class_1_on_labels_topic() -> None:
    out = _decoder()(_msg(b'{"id": "e1", "label": true}', LABELS))
    assert isinstance(out, DeadLetter)
    assert out.reason in {R.WRONG_TYPE, R.UNKNOWN_CLASS}


@pytest.mark.parametrize("label", [True, False])
def test_schema_class_index_refuses_bools(label: bool) -> None:
    schema = _schema()
    assert schema.class_index(1) == 1
    assert schema.class_index(0) == 0
    assert schema.class_index(label) is None


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b'{"id": "e1", "features": {"a": 1.5, "b": -2, "c": 3e2}}', id="object_in_order"),
        pytest.param(b'{"id": "e1", "features": {"c": 3e2, "a": 1.5, "b": -2}}', id="object_shuffled"),
        pytest.param(b'{"id": "e1", "features": [1.5, -2, 300]}', id="array"),
    ],
)
def test_valid_event_gives_features_in_schema_order(value: bytes) -> None:
    out = _decoder()(_msg(value))
    assert isinstance(out, Event), out
    assert out.id == "e1"
    assert out.x == [1.5, -2.0, 300.0]
    assert all(isinstance(v, float) for v in out.x)
    assert out.label is None
    assert out.source == SourceRef(EVENTS, 3, 41, 1_700_000_000_000)


@pytest.mark.parametrize(
    ("classes", "wire_label", "index"),
    [
        pytest.param([0, 1], b"0", 0, id="int_0"),
        pytest.param([0, 1], b"1", 1, id="int_1"),
        pytest.param(["cat", "dog", "emu"], b'"emu"', 2, id="str"),
        pytest.param([10, 20], b"20", 1, id="int_not_index"),
        pytest.param(["no", 7], b"7", 1, id="mixed"),
    ],
)
def test_inline_label_maps_to_class_index(classes: list[int | str], wire_label: bytes, index: int) -> None:
    schema = FeatureSchema(["a", "b", "c"], classes)
    value = b'{"id": "e1", "features": [1, 2, 3], "label": ' + wire_label + b"}"
    out = _decoder(schema)(_msg(value))
    assert isinstance(out, Event), out
    assert out.label == index


def test_event_timestamp_from_wire_beats_kafka_timestamp() -> None:
    out = _decoder()(_msg(b'{"id": "e1", "features": [1, 2, 3], "ts_ms": 1234}', timestamp=(1, 999)))
    assert isinstance(out, Event)
    assert out.source.ts_ms == 1234
    assert (out.source.topic, out.source.partition, out.source.offset) == (EVENTS, 3, 41)


@pytest.mark.parametrize(
    ("timestamp", "ts_ms"),
    [((1, 555), 555), ((2, 777), 777), ((0, 555), None), (None, None)],
)
def test_kafka_timestamp_type_0_means_unknown(timestamp: tuple[int, int] | None, ts_ms: int | None) -> None:
    out = _decoder()(_msg(b'{"id": "e1", "features": [1, 2, 3]}', timestamp=timestamp))
    assert isinstance(out, Event)
    assert out.source.ts_ms == ts_ms


@pytest.mark.parametrize(
    ("classes", "wire_label", "index"),
    [([0, 1], b"1", 1), ([0, 1], b"0", 0), (["neg", "pos"], b'"pos"', 1)],
)
def test_labels_topic_decodes_to_label(classes: list[int | str], wire_label: bytes, index: int) -> None:
    schema = FeatureSchema(["a", "b", "c"], classes)
    value = b'{"id": "e9", "label": ' + wire_label + b"}"
    out = _decoder(schema)(_msg(value, LABELS, partition=1, offset=7, timestamp=(1, 5)))
    assert isinstance(out, Label), out
    assert out.id == "e9"
    assert out.label == index
    assert out.source == SourceRef(LABELS, 1, 7, 5)
    assert out.original == value


def test_label_shaped_message_on_events_topic_is_not_a_label() -> None:
    out = _decoder()(_msg(b'{"id": "e9", "label": 1}', EVENTS))
    assert isinstance(out, DeadLetter)
    assert out.reason is R.MISSING_FIELD


def test_without_labels_topic_everything_is_an_event() -> None:
    decoder = Decoder(_schema(), EVENTS, None)
    out = decoder(_msg(b'{"id": "e9", "features": [1, 2, 3], "label": 1}', "other"))
    assert isinstance(out, Event)
    assert out.label == 1
    assert out.source.topic == "other"


@pytest.mark.parametrize(
    ("features", "classes"),
    [([], [0, 1]), (["a", "a"], [0, 1]), (["a"], [0]), (["a"], [1, 1])],
)
def test_feature_schema_rejects_bad_definitions(features: list[str], classes: list[int | str]) -> None:
    with pytest.raises(ValueError):
        FeatureSchema(features, classes)


# -- categorical features ------------------------------------------------------------------------

COLOURS = ["red", "green", "blue"]


def _categorical() -> Decoder:
    return Decoder(
        FeatureSchema(["a", "colour", "zip"], [0, 1], categories={"colour": COLOURS, "zip": [10, 20, 30]}),
        EVENTS, LABELS,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("value", "x"),
    [
        (b'{"id": "e1", "features": {"a": 1.5, "colour": "blue", "zip": 20}}', [1.5, 2.0, 1.0]),
        (b'{"id": "e1", "features": [-2, "red", 30]}', [-2.0, 0.0, 2.0]),
        (b'{"id": "e1", "features": [0.25, "green", 10.0]}', [0.25, 1.0, 0.0]),  # 10.0 is the integer 10
    ],
)
def test_categorical_values_become_their_codes(value: bytes, x: list[float]) -> None:
    out = _categorical()(_msg(value))
    assert isinstance(out, Event)
    assert out.x == x


BAD_CATEGORICAL: list[tuple[str, bytes, DeadLetterReason, str]] = [
    ("unknown string", b'{"id": "e1", "features": [1, "purple", 10]}', R.UNKNOWN_CATEGORY, "'purple' is not one of"),
    ("unknown integer", b'{"id": "e1", "features": [1, "red", 40]}', R.UNKNOWN_CATEGORY, "'zip': 40.0 is not one of"),
    ("a number for a string category", b'{"id": "e1", "features": [1, 3, 10]}', R.UNKNOWN_CATEGORY, "colour"),
    ("a string for a number", b'{"id": "e1", "features": ["1", "red", 10]}', R.WRONG_TYPE, "feature 'a' is a number"),
    ("a list for a value", b'{"id": "e1", "features": [1, ["red"], 10]}', R.WRONG_TYPE, "features"),
]


@pytest.mark.parametrize(
    ("value", "reason", "detail"), [c[1:] for c in BAD_CATEGORICAL], ids=[c[0] for c in BAD_CATEGORICAL]
)
def test_a_bad_categorical_value_is_a_dead_letter_that_says_which(
    value: bytes, reason: DeadLetterReason, detail: str
) -> None:
    out = _categorical()(_msg(value))
    assert isinstance(out, DeadLetter)
    assert out.reason is reason
    assert detail in out.detail
    assert out.original == value


@pytest.mark.parametrize(
    ("categories", "problem"),
    [
        ({"d": ["x"]}, "is not one of the features"),
        ({"a": []}, "needs distinct string or integer values"),
        ({"a": ["x", "x"]}, "needs distinct"),
        ({"a": [True, False]}, "needs distinct"),
    ],
)
def test_feature_schema_rejects_bad_categories(categories: dict[str, list[object]], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        FeatureSchema(["a", "b"], [0, 1], categories=categories)  # type: ignore[arg-type]
