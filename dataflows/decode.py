"""Decode and validate raw Kafka messages into `Event`s and `Label`s; everything else is a `DeadLetter`.

Decoding never raises on bad data: an exception escaping a Bytewax step would stop the worker,
so every problem becomes a dead letter that names the reason and keeps the original bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, cast

import msgspec
from confluent_kafka import Message

from dataflows.records import DeadLetter, DeadLetterReason, Event, Label, SourceRef

__all__ = ["Decoder", "FeatureSchema", "RawMessage"]


@dataclass(frozen=True)
class FeatureSchema:
    """What an event must look like.

    ``features`` are the names, in the order the model sees them; an event gives them as a JSON
    object with exactly these keys, or as an array of this length. ``classes`` are the labels
    the model may be taught, as they appear on the wire. ``categories`` names the categorical
    features and their values, as they appear on the wire (strings or integers); an event carries
    one of them, and the model sees its position in the list (a learner that knows the feature is
    categorical, from `categories`, treats it so). Every other feature is a number.
    """

    features: Sequence[str]
    classes: Sequence[int | str]
    max_event_bytes: int = 64 * 1024
    max_abs_feature: float = 1e9  # larger finite values overflow some learners (River's Gaussian, Adam)
    categories: Mapping[str, Sequence[int | str]] = field(default_factory=dict, hash=False)
    _class_index: dict[int | str, int] = field(init=False, repr=False, compare=False)
    _category_index: dict[int, dict[int | float | str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.features:
            msg = "a feature schema needs at least one feature"
            raise ValueError(msg)
        if len(set(self.features)) != len(self.features):
            msg = f"feature names must be unique: {list(self.features)}"
            raise ValueError(msg)
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            msg = f"a classifier needs at least two distinct classes, got {list(self.classes)}"
            raise ValueError(msg)
        object.__setattr__(self, "_class_index", {c: i for i, c in enumerate(self.classes)})
        index: dict[int, dict[int | float | str, int]] = {}
        for name, values in self.categories.items():
            if name not in self.features:
                msg = f"categorical feature {name!r} is not one of the features {list(self.features)}"
                raise ValueError(msg)
            if not values or len(set(values)) != len(values) or any(isinstance(v, bool) for v in values):
                msg = f"categorical feature {name!r} needs distinct string or integer values, got {list(values)}"
                raise ValueError(msg)
            # A JSON integer may arrive as a float where numbers are allowed too: 3 and 3.0 are one value.
            codes: dict[int | float | str, int] = {v: i for i, v in enumerate(values)}
            codes |= {float(v): i for i, v in enumerate(values) if isinstance(v, int)}
            index[list(self.features).index(name)] = codes
        object.__setattr__(self, "_category_index", index)

    @property
    def category_positions(self) -> dict[int, dict[int | float | str, int]]:
        """Position of each categorical feature in ``features``, with its values' codes."""
        return self._category_index

    def class_index(self, label: int | str) -> int | None:
        # bool is an int in Python; JSON true must not pass for class 1.
        if isinstance(label, bool):
            return None
        return self._class_index.get(label)


@dataclass(frozen=True, slots=True)
class RawMessage:
    """The part of a Kafka message that decoding needs (Bytewax's KafkaSourceMessage fits)."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: tuple[int, int] | None = None


_Raw = tuple[bytes | None, bytes | None]  # what a dead letter keeps of its message: key, value (a plain tuple: cheap)


# Ids are kept while an event waits for its label: their length is bounded.
EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
TimestampMs = Annotated[int, msgspec.Meta(ge=0, le=2**53)]


class _EventWire(msgspec.Struct, forbid_unknown_fields=True):
    id: EventId
    features: dict[str, float] | list[float]
    label: int | str | None = None
    ts_ms: TimestampMs | None = None


class _MixedEventWire(msgspec.Struct, forbid_unknown_fields=True):
    """An event of a schema with categorical features: a value may be a number or a string."""

    id: EventId
    features: dict[str, float | str] | list[float | str]
    label: int | str | None = None
    ts_ms: TimestampMs | None = None


class _LabelWire(msgspec.Struct, forbid_unknown_fields=True):
    id: EventId
    label: int | str


_MSGSPEC_REASONS = (
    (re.compile(r"Object missing required field"), DeadLetterReason.MISSING_FIELD),
    (re.compile(r"Object contains unknown field"), DeadLetterReason.EXTRA_FIELD),
    (re.compile(r"Number out of range"), DeadLetterReason.NON_FINITE),
    (re.compile(r"Expected `\w+` (of length )?[<>]="), DeadLetterReason.BAD_VALUE),
)


class Decoder:
    """Turns raw messages from the events and labels topics into records or dead letters."""

    def __init__(self, schema: FeatureSchema, events_topic: str, labels_topic: str | None) -> None:
        self.schema = schema
        self.events_topic = events_topic
        self.labels_topic = labels_topic
        self._names = list(schema.features)
        self._name_set = frozenset(schema.features)
        self._categorical = schema.category_positions
        self._events: msgspec.json.Decoder[_EventWire] | msgspec.json.Decoder[_MixedEventWire] = (
            msgspec.json.Decoder(_MixedEventWire) if self._categorical else msgspec.json.Decoder(_EventWire)
        )
        self._labels = msgspec.json.Decoder(_LabelWire)
        self._max_abs = schema.max_abs_feature

    def __call__(self, msg: RawMessage | Message) -> Event | Label | DeadLetter:
        if type(msg) is Message:  # confluent-kafka's own, as `dataflows.kafka_io` hands them on
            return self.decode(msg.key(), msg.value(), msg.topic() or "", msg.partition() or 0, msg.offset() or 0,
                               msg.timestamp())  # fmt: skip
        raw = cast(RawMessage, msg)  # or shaped like one (Bytewax's KafkaSourceMessage)
        return self.decode(raw.key, raw.value, raw.topic, raw.partition, raw.offset, raw.timestamp)

    def decode_many(self, msgs: Iterable[RawMessage | Message]) -> tuple[list[Event | Label], list[DeadLetter]]:
        """A micro-batch: its records in order, and its dead letters."""
        records: list[Event | Label] = []
        dead: list[DeadLetter] = []
        for msg in msgs:
            out = self(msg)
            (dead if type(out) is DeadLetter else records).append(out)  # type: ignore[arg-type]
        return records, dead

    def decode(
        self, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int,
        timestamp: tuple[int, int] | None,
    ) -> Event | Label | DeadLetter:  # fmt: skip
        source = SourceRef(topic, partition, offset, _kafka_ts(timestamp))
        msg = (key, value)
        if not value:
            return self._dead(DeadLetterReason.EMPTY_PAYLOAD, "message has no value", source, msg)
        if len(value) > self.schema.max_event_bytes:
            detail = f"{len(value)} bytes is over the limit of {self.schema.max_event_bytes}"
            return self._dead(DeadLetterReason.OVERSIZED, detail, source, msg)
        is_label = topic == self.labels_topic
        try:
            wire = self._labels.decode(value) if is_label else self._events.decode(value)
        except msgspec.ValidationError as exc:
            return self._dead(_reason_of(exc), f"{'label' if is_label else 'event'}: {exc}", source, msg)
        except msgspec.DecodeError as exc:
            return self._dead(DeadLetterReason.BAD_JSON, str(exc), source, msg)
        if isinstance(wire, _LabelWire):
            return self._label(wire, value, source, msg)
        return self._event(wire, source, msg)

    def _event(self, wire: _EventWire | _MixedEventWire, source: SourceRef, msg: _Raw) -> Event | DeadLetter:
        features = wire.features
        given: Sequence[float | str]
        if isinstance(features, dict):
            if features.keys() != self._name_set:
                return self._feature_keys_problem(features.keys(), source, msg)
            given = [features[name] for name in self._names]
        else:
            if len(features) != len(self._names):
                detail = f"features has {len(features)} values, the schema has {len(self._names)}"
                return self._dead(DeadLetterReason.WRONG_DIMENSION, detail, source, msg)
            given = features
        x: list[float]
        if self._categorical:
            coded = self._coded(given, source, msg)
            if isinstance(coded, DeadLetter):
                return coded
            x = coded
        else:
            x = given  # type: ignore[assignment]  # _EventWire: numbers only
        # NaN and infinities never get here: JSON has no literal for them and msgspec rejects
        # numbers beyond float64. Huge finite values would still overflow a learner.
        if x and max(map(abs, x)) > self._max_abs:
            detail = f"a feature's magnitude exceeds {self._max_abs:g}"
            return self._dead(DeadLetterReason.OUT_OF_RANGE, detail, source, msg)
        label: int | None = None
        if wire.label is not None:
            label = self.schema.class_index(wire.label)
            if label is None:
                return self._unknown_class(wire.label, source, msg)
        if wire.ts_ms is not None:
            source = SourceRef(source.topic, source.partition, source.offset, wire.ts_ms)
        return Event(wire.id, x, label, source)

    def _coded(self, given: Sequence[float | str], source: SourceRef, msg: _Raw) -> list[float] | DeadLetter:
        """Categorical values as their codes; a string where a number belongs, or a value not in its
        feature's list, is a dead letter."""
        x: list[float] = []
        for i, v in enumerate(given):
            codes = self._categorical.get(i)
            if codes is None:
                if isinstance(v, str):
                    detail = f"feature {self._names[i]!r} is a number, got the string {v[:64]!r}"
                    return self._dead(DeadLetterReason.WRONG_TYPE, detail, source, msg)
                x.append(v)
                continue
            code = codes.get(v)
            if code is None:
                values = list(self.schema.categories[self._names[i]])
                shown = v[:64] if isinstance(v, str) else v
                detail = f"feature {self._names[i]!r}: {shown!r} is not one of its categories {values[:20]}"
                return self._dead(DeadLetterReason.UNKNOWN_CATEGORY, detail, source, msg)
            x.append(float(code))
        return x

    def _label(self, wire: _LabelWire, value: bytes, source: SourceRef, msg: _Raw) -> Label | DeadLetter:
        label = self.schema.class_index(wire.label)
        if label is None:
            return self._unknown_class(wire.label, source, msg)
        return Label(wire.id, label, source, value)

    def _feature_keys_problem(self, keys: object, source: SourceRef, msg: _Raw) -> DeadLetter:
        given = set(keys)  # type: ignore[call-overload]
        missing = sorted(self._name_set - given)
        if missing:
            return self._dead(DeadLetterReason.MISSING_FIELD, f"missing features {missing}", source, msg)
        extra = sorted(given - self._name_set)
        return self._dead(DeadLetterReason.EXTRA_FIELD, f"unknown features {extra}", source, msg)

    def _unknown_class(self, label: object, source: SourceRef, msg: _Raw) -> DeadLetter:
        detail = f"label {label!r} is not one of the classes {list(self.schema.classes)}"
        return self._dead(DeadLetterReason.UNKNOWN_CLASS, detail, source, msg)

    @staticmethod
    def _dead(reason: DeadLetterReason, detail: str, source: SourceRef, msg: _Raw) -> DeadLetter:
        return DeadLetter(reason, detail, source, msg[1], msg[0])


def _reason_of(exc: msgspec.ValidationError) -> DeadLetterReason:
    text = str(exc)
    for pattern, reason in _MSGSPEC_REASONS:
        if pattern.match(text):
            return reason
    return DeadLetterReason.WRONG_TYPE


def _kafka_ts(timestamp: tuple[int, int] | None) -> int | None:
    # confluent-kafka gives (type, ms); type 0 means "not available".
    if timestamp is None or timestamp[0] == 0:
        return None
    return timestamp[1]
