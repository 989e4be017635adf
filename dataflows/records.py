"""The records that travel through the flow, and the JSON each output topic receives.

Inputs (decoded by `dataflows.decode`): `Event` from the events topic, `Label` from the labels
topic (commands: `dataflows.control`). Outputs, each on its own stream to its own encoder:
`Prediction` (predictions topic), `DeadLetter` (dead-letter topic), `ModelReport`,
`VerdictRecord`, `DecisionRecord` and `CommandRecord` (model-events topic, told apart by
``type``). Each becomes a `KafkaOut` with a deterministic key where one exists, so that replays
after a crash can be de-duplicated downstream.
See docs/architecture.md for the wire schemas.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Iterable
from typing import NamedTuple

import msgspec

__all__ = [
    "CommandRecord",
    "DeadLetter",
    "DeadLetterReason",
    "DecisionRecord",
    "Event",
    "KafkaBatch",
    "KafkaOut",
    "Label",
    "ModelEvent",
    "ModelReport",
    "Prediction",
    "QuarantineRecord",
    "SinkItem",
    "SourceRef",
    "VerdictRecord",
    "VoteRecord",
    "encode_dead_letter",
    "encode_model_event",
    "encode_predictions",
    "sink_messages",
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
    UNKNOWN_CATEGORY = "unknown_category"
    BAD_VALUE = "bad_value"
    OUT_OF_RANGE = "out_of_range"
    LABEL_UNMATCHED = "label_unmatched"
    MODEL_ERROR = "model_error"
    BAD_COMMAND = "bad_command"


class DeadLetter(msgspec.Struct, frozen=True):
    reason: DeadLetterReason
    detail: str
    source: SourceRef | None
    original: bytes | None
    original_key: bytes | None = None


class Prediction(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """A served prediction: which version made it, and the route that chose that version. The
    vote's (``route: "vote"``) names its heaviest member's version, and in ``votes`` every
    member's version with its weight."""

    id: str
    group: str
    version: str  # registry id, e.g. "default/7"
    route: str  # "champion", "canary", "live" (the refresh fork's copy) or "vote" (the portfolio's)
    prediction: int | str
    proba: list[float]
    event_ts_ms: int | None
    predicted_ts_ms: int
    source: SourceRef
    votes: dict[str, float] | None = None  # the vote's members' versions and weights


class ModelReport(msgspec.Struct, frozen=True, kw_only=True, tag="report", tag_field="type"):
    """What one model did with one micro-batch of labelled examples (or why it could not).

    ``lag_batches`` is how many labelled batches wait for this model to learn them; a model that
    falls too far behind skips the oldest (``skipped_batches_total``) instead of holding serving.
    """

    group: str
    model: str  # the slot: "champion", "standby", or a candidate's name
    version: str
    role: str  # champion, candidate or standby
    ts_ms: int
    batch: int  # the group's labelled-batch sequence number
    n_labelled: int = 0
    n_learned: int = 0
    n_correct: int = 0
    accuracy: float | None = None
    rolling_accuracy: float | None = None
    rolling_log_loss: float | None = None
    learn_ms: float = 0.0
    lag_batches: int = 0
    skipped_batches_total: int = 0
    offsets: dict[str, list[int]] = msgspec.field(default_factory=dict)
    pending_features: int = 0
    pending_labels: int = 0
    features_expired_total: int = 0
    labels_unmatched_total: int = 0
    error: str | None = None  # what the model raised, when it could not predict or learn


class VerdictRecord(msgspec.Struct, frozen=True, kw_only=True, tag="verdict", tag_field="type"):
    """An evaluator's verdict on a version, emitted when its phase changes."""

    group: str
    model: str
    version: str
    evaluator: str  # shadow, canary, golden, probation
    phase: str
    reason: str
    evidence: dict[str, float | int | str | bool | None]
    ts_ms: int


class DecisionRecord(msgspec.Struct, frozen=True, kw_only=True, tag="decision", tag_field="type"):
    """What the promoter did (promote, refuse, rollback, retire; or, with a vote, a member that
    took the lead), why, and on what evidence."""

    group: str
    action: str
    version: str
    previous: str | None
    reason: str
    evidence: dict[str, object]
    ts_ms: int


class CommandRecord(msgspec.Struct, frozen=True, kw_only=True, tag="command", tag_field="type"):
    """An operator's command and what became of it (`dataflows.control`): ``outcome`` is
    ``applied``, ``rejected``, ``duplicate`` or ``expired``, ``detail`` says what was done or why
    not. ``ts_ms`` is when it was applied; ``issued_ts_ms`` when it was issued; ``source`` where it
    was read on the control topic."""

    group: str
    id: str
    kind: str
    args: dict[str, object]
    actor: str
    reason: str
    outcome: str
    detail: str
    issued_ts_ms: int
    ts_ms: int
    source: SourceRef | None = None


class VoteRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag="vote", tag_field="type"):
    """The portfolio's vote (`model.vote`): each member's weight and version (by slot), what serves
    the vote's route (``vote``, or the one member the guard chose) and the recent (faded) accuracy
    of each member and of the vote. Sent when the lead changes hands, the guard's choice changes,
    or a weight moved by 0.05 or more since the last one."""

    group: str
    ts_ms: int
    weights: dict[str, float]
    versions: dict[str, str]
    choice: str
    accuracy: dict[str, float | None]
    shares: dict[str, float] | None = None  # with the bandit policy: each member's share of the keys


class QuarantineRecord(msgspec.Struct, frozen=True, kw_only=True, tag="quarantine", tag_field="type"):
    """Labels held back as suspect (`evaluators.LabelQuarantine`, the quarantine topic). ``action``:
    ``engaged`` (the first batch held, and why), ``held`` (a later batch), ``cleared`` (the signal
    is gone: what was held is dropped), ``released`` (what was held is learned: the labels were
    learnable, the change lasted, or an operator released them). ``examples``: the labelled
    examples of the batch (engaged, held) or of everything held (cleared, released); ``offsets``:
    the input offsets they came from, as ``[topic, partition, first, last]`` runs (for a batch;
    empty for cleared and released, whose batches were each sent as they were held)."""

    group: str
    action: str
    reason: str
    examples: int
    offsets: list[tuple[str, int, int, int]]
    ts_ms: int


ModelEvent = ModelReport | VerdictRecord | DecisionRecord | CommandRecord | VoteRecord | QuarantineRecord


class KafkaOut(NamedTuple):
    """One message for the sink: topic, key and encoded value (a tuple: cheap to build, one per output)."""

    topic: str
    key: bytes
    value: bytes


class KafkaBatch(NamedTuple):
    """Many messages for one topic, as one item for the sink: a served micro-batch's predictions
    cross the flow as one item, not one per event."""

    topic: str
    keys: list[bytes]
    values: list[bytes]

    def messages(self) -> list[KafkaOut]:
        return [KafkaOut(self.topic, k, v) for k, v in zip(self.keys, self.values, strict=True)]


SinkItem = KafkaOut | KafkaBatch


def sink_messages(items: Iterable[SinkItem]) -> list[KafkaOut]:
    """The messages that sink items stand for, in order (for readers of a `TestingSink`)."""
    return [m for item in items for m in (item.messages() if isinstance(item, KafkaBatch) else (item,))]


def encode_predictions(records: list[Prediction], topic: str) -> KafkaBatch:
    """Keyed by event id: a replayed prediction can be de-duplicated."""
    encode = _encoder.encode
    return KafkaBatch(topic, [r.id.encode() for r in records], [encode(r) for r in records])


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


def encode_dead_letter(record: DeadLetter, topic: str, now_ms: int) -> KafkaOut:
    """Keyed by the source message's ``topic/partition/offset``."""
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
        original_key_b64=_b64(record.original_key[:MAX_KEY_KEEP_BYTES] if record.original_key else record.original_key),
        original_key_size=len(record.original_key or b""),
        original_size=size,
        original_truncated=truncated,
        dead_lettered_ts_ms=now_ms,
    )
    key = record.source.key if record.source is not None else f"{record.reason.value}/{now_ms}"
    return KafkaOut(topic, key.encode(), _encoder.encode(wire))


def encode_model_event(record: ModelEvent, topic: str) -> KafkaOut:
    """Keyed by group: a group's reports, verdicts and decisions stay in order on one partition."""
    return KafkaOut(topic, record.group.encode(), _encoder.encode(record))


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")
