"""The records that travel through the flow, and the JSON each output topic receives.

Inputs (decoded by `dataflows.decode`): `Event` from the events topic, `Label` from the labels
topic. Outputs: `Prediction`, `DeadLetter` and `ModelEvent`, each turned into a `KafkaOut` with a
deterministic key so that replays after a crash can be de-duplicated downstream.
See docs/architecture.md for the wire schemas.
"""

from __future__ import annotations

import base64
import enum
from typing import NamedTuple

import msgspec

__all__ = [
    "DeadLetter",
    "DeadLetterReason",
    "Event",
    "KafkaOut",
    "Label",
    "ModelEvent",
    "Prediction",
    "SourceRef",
]


class SourceRef(msgspec.Struct, frozen=True, gc=False):
    """Where a record came from: enough to find it again in Kafka."""

    topic: str
    partition: int
    offset: int
    ts_ms: int | None = None  # event time: the event's own ts_ms if it has one, else the Kafka timestamp

    @property
    def key(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


class Event(msgspec.Struct, frozen=True, gc=False):
    """A decoded, validated event: features in schema order, label as a class index if inline."""

    id: str
    x: list[float]
    label: int | None
    source: SourceRef


class Label(msgspec.Struct, frozen=True, gc=False):
    """A delayed label for the event with the same id."""

    id: str
    label: int
    source: SourceRef
    original: bytes  # kept so an unmatched label can be dead-lettered with its bytes


class DeadLetterReason(enum.StrEnum):
    """Why a record could not be used. The value is what the dead-letter record says."""

    BAD_JSON = "bad_json"
    EMPTY_PAYLOAD = "empty_payload"
    OVERSIZED = "oversized"
    MISSING_FIELD = "missing_field"
    EXTRA_FIELD = "extra_field"
    WRONG_TYPE = "wrong_type"
    WRONG_DIMENSION = "wrong_dimension"
    NON_FINITE = "non_finite"
    UNKNOWN_CLASS = "unknown_class"
    BAD_VALUE = "bad_value"
    OUT_OF_RANGE = "out_of_range"
    LABEL_UNMATCHED = "label_unmatched"
    MODEL_ERROR = "model_error"


class DeadLetter(msgspec.Struct, frozen=True):
    reason: DeadLetterReason
    detail: str
    source: SourceRef | None
    original: bytes | None
    original_key: bytes | None = None


class Prediction(msgspec.Struct, frozen=True, gc=False):
    id: str
    group: str
    model: str
    model_version: int
    prediction: int | str
    proba: list[float]
    event_ts_ms: int | None
    predicted_ts_ms: int
    source: SourceRef


class ModelEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Something a model did: for now, one record per micro-batch it scored and learned from."""

    type: str
    group: str
    model: str
    model_version: int
    ts_ms: int
    n_predicted: int = 0
    n_labelled: int = 0  # labelled examples in the batch, scored before learning
    n_learned: int = 0  # of those, learned (0 when the model failed to learn)
    n_correct: int = 0
    accuracy: float | None = None
    rolling_accuracy: float | None = None
    pending_features: int = 0
    pending_labels: int = 0
    features_expired_total: int = 0
    labels_unmatched_total: int = 0
    offsets: dict[str, list[int]] = msgspec.field(default_factory=dict)
    batch: int = 0  # the group's micro-batch sequence number
    error: str | None = None  # what went wrong, for type "predict_error" / "learn_error"


class KafkaOut(NamedTuple):
    """One message for the sink: topic, key and encoded value (a tuple: cheap to build, one per output)."""

    topic: str
    key: bytes
    value: bytes


# -- wire encodings -----------------------------------------------------------------------------


class _DeadLetterWire(msgspec.Struct):
    reason: str
    detail: str
    source: SourceRef | None
    original_b64: str | None
    original_key_b64: str | None
    original_key_size: int
    original_size: int
    original_truncated: bool
    dead_lettered_ts_ms: int


# An oversized payload keeps only its head in the dead letter: the whole of it, base64-encoded,
# could exceed what the broker accepts and take the sink down with it. Keys are not bounded by
# schema.max_event_bytes, so a dead letter keeps at most this much of any key.
OVERSIZED_KEEP_BYTES = 1024
MAX_KEY_KEEP_BYTES = 1024


_encoder = msgspec.json.Encoder()


def to_kafka(record: Prediction | DeadLetter | ModelEvent, topic: str, now_ms: int) -> KafkaOut:
    """Encode an output record for its topic, keyed deterministically."""
    if isinstance(record, Prediction):
        return KafkaOut(topic, record.id.encode(), _encoder.encode(record))
    if isinstance(record, DeadLetter):
        original = record.original
        size = len(original) if original is not None else 0
        truncated = original is not None and record.reason is DeadLetterReason.OVERSIZED and size > OVERSIZED_KEEP_BYTES
        if truncated and original is not None:
            original = original[:OVERSIZED_KEEP_BYTES]
        wire = _DeadLetterWire(
            reason=record.reason.value,
            detail=record.detail,
            source=record.source,
            original_b64=_b64(original),
            original_key_b64=_b64(
                record.original_key[:MAX_KEY_KEEP_BYTES] if record.original_key else record.original_key
            ),
            original_key_size=len(record.original_key or b""),
            original_size=size,
            original_truncated=truncated,
            dead_lettered_ts_ms=now_ms,
        )
        key = record.source.key if record.source is not None else f"{record.reason.value}/{now_ms}"
        return KafkaOut(topic, key.encode(), _encoder.encode(wire))
    key = f"{record.group}/{record.model}/{record.batch}/{record.type}"
    return KafkaOut(topic, key.encode(), _encoder.encode(record))


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")
