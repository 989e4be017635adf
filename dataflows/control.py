"""Operators' commands: the control topic's messages, checked strictly, as the train step applies them.

A command is one JSON message on the control topic (``kafka.control_topic``, one partition, key =
group)::

    {"id": "3f1c…", "group": "default", "kind": "pause", "args": {"model": "fork"},
     "actor": "alice", "reason": "incident 42: labels are late", "ts_ms": 1765000000000}

`decode_command` turns a message into a `Command` (its ``args`` checked against the kind's own
struct, unknown fields refused) or a `DeadLetter` (``bad_command``) that says what is wrong. The
admin API builds its commands with `new_command`, which checks the same way before anything is
produced. The train step (`dataflows.train.commands`) applies them, in order with the data, and
reports each with its outcome as a `dataflows.records.CommandRecord`.

Kinds and their arguments:

- ``pause`` / ``resume`` (``model``: a candidate's name, or null for every candidate): a paused
  candidate still scores (its trial takes no evidence while it learns nothing) and learns nothing;
  its lineage has a gap over the stretch;
- ``freeze`` / ``unfreeze``: verdicts are still reported, nothing is decided, the canary's share is held;
- ``promote`` (``model`` a candidate's name, or ``version`` one with a checkpoint; ``skip_golden``);
- ``rollback`` (``version``: one that once served; null: the standby);
- ``add_candidate`` (``candidate``: a fragment as in ``model.candidates`` of the config file);
- ``retire`` (``model``: a candidate's name; never the champion);
- ``set_canary_ceiling`` (``share`` in [0, 1]: the canary serves at most this share; 0: no canary route);
- ``replay`` (``candidate`` as for ``add_candidate``, ``ranges``: stretches of the input topics as
  ``{"topic", "partition", "first", "last"}``): the candidate learns them, read off the live flow,
  then joins the group;
- ``release_quarantine`` (``learn``: true learns the labels the quarantine holds, false drops
  them; they stay on the quarantine topic either way): the label quarantine ends.
"""

from __future__ import annotations

import enum
import uuid
from typing import Annotated, Any, cast

import msgspec
from confluent_kafka import Message

from dataflows.decode import RawMessage
from dataflows.records import DeadLetter, DeadLetterReason, KafkaOut, SourceRef

__all__ = [
    "ARGS",
    "AddCandidateArgs",
    "CanaryCeilingArgs",
    "Command",
    "CommandError",
    "CommandKind",
    "ModelArgs",
    "NoArgs",
    "Outcome",
    "PromoteArgs",
    "RangeArgs",
    "ReleaseArgs",
    "ReplayArgs",
    "RollbackArgs",
    "command_of",
    "decode_command",
    "encode_command",
    "new_command",
]

MAX_COMMAND_BYTES = 64 * 1024

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
TimestampMs = Annotated[int, msgspec.Meta(ge=0, le=2**53)]


class CommandError(ValueError):
    """A command that cannot be applied as written: the message says why."""


class CommandKind(enum.StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    ADD_CANDIDATE = "add_candidate"
    RETIRE = "retire"
    SET_CANARY_CEILING = "set_canary_ceiling"
    REPLAY = "replay"
    RELEASE_QUARANTINE = "release_quarantine"


class Outcome(enum.StrEnum):
    """What became of a command: done, refused (``detail`` says why), seen before, or too old."""

    APPLIED = "applied"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    EXPIRED = "expired"


class _Args(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class NoArgs(_Args, frozen=True):
    """freeze, unfreeze."""


class ModelArgs(_Args, frozen=True):
    """pause and resume (``model`` None: every candidate), retire (a candidate's name)."""

    model: Name | None = None


class PromoteArgs(_Args, frozen=True):
    """Promote a candidate's model as it is now (``model``) or a version with a checkpoint."""

    model: Name | None = None
    version: Name | None = None
    skip_golden: bool = False


class RollbackArgs(_Args, frozen=True):
    """Serve ``version`` (one that served before) again; None: the standby."""

    version: Name | None = None


class AddCandidateArgs(_Args, frozen=True):
    """A candidate as ``model.candidates`` in the config file writes it."""

    candidate: dict[str, Any]


class CanaryCeilingArgs(_Args, frozen=True):
    share: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


Offset = Annotated[int, msgspec.Meta(ge=0)]


class RangeArgs(_Args, frozen=True):
    """Offsets ``first..last`` (both included) of one partition of an input topic."""

    topic: Name
    partition: Offset
    first: Offset
    last: Offset


class ReplayArgs(_Args, frozen=True):
    """A new candidate (as ``add_candidate`` takes it) that first learns these stretches."""

    candidate: dict[str, Any]
    ranges: Annotated[list[RangeArgs], msgspec.Meta(min_length=1, max_length=1024)]


class ReleaseArgs(_Args, frozen=True):
    """End the label quarantine: learn what it holds (``learn``), or drop it."""

    learn: bool = True


ARGS: dict[CommandKind, type[_Args]] = {
    CommandKind.PAUSE: ModelArgs,
    CommandKind.RESUME: ModelArgs,
    CommandKind.FREEZE: NoArgs,
    CommandKind.UNFREEZE: NoArgs,
    CommandKind.PROMOTE: PromoteArgs,
    CommandKind.ROLLBACK: RollbackArgs,
    CommandKind.ADD_CANDIDATE: AddCandidateArgs,
    CommandKind.RETIRE: ModelArgs,
    CommandKind.SET_CANARY_CEILING: CanaryCeilingArgs,
    CommandKind.REPLAY: ReplayArgs,
    CommandKind.RELEASE_QUARANTINE: ReleaseArgs,
}


class _CommandWire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: Name
    group: Name
    kind: CommandKind
    actor: Name
    reason: Text
    ts_ms: TimestampMs
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class Command(msgspec.Struct, frozen=True):
    """A checked command, with where it was read (None: not read from Kafka yet)."""

    id: str
    group: str
    kind: CommandKind
    args: Any  # the kind's struct in `ARGS`
    actor: str
    reason: str
    ts_ms: int
    source: SourceRef | None = None

    def wire_args(self) -> dict[str, Any]:
        """The arguments as the wire writes them (no defaults left out, for records)."""
        out: dict[str, Any] = msgspec.to_builtins(self.args)
        return out


_decoder = msgspec.json.Decoder(_CommandWire)
_encoder = msgspec.json.Encoder()


def _checked(wire: _CommandWire, source: SourceRef | None) -> Command:
    try:
        args = msgspec.convert(wire.args, ARGS[wire.kind])
    except msgspec.ValidationError as exc:
        msg = f"{wire.kind} arguments: {exc}"
        raise CommandError(msg) from None
    if isinstance(args, ModelArgs) and wire.kind is CommandKind.RETIRE and args.model is None:
        msg = "retire needs the candidate's name (args.model)"
        raise CommandError(msg)
    if isinstance(args, PromoteArgs) and (args.model is None) == (args.version is None):
        msg = "promote needs either a candidate's name (args.model) or a version (args.version)"
        raise CommandError(msg)
    if not wire.reason.strip():
        msg = "a command needs a reason"
        raise CommandError(msg)
    return Command(wire.id, wire.group, wire.kind, args, wire.actor, wire.reason, wire.ts_ms, source)


def new_command(
    group: str, kind: str, args: dict[str, Any] | None, *, actor: str, reason: str, ts_ms: int,
    id: str | None = None,
) -> Command:  # fmt: skip
    """A command as the admin API makes it, checked as the train step will check it
    (`CommandError` says what is wrong); ``id`` defaults to a new UUID."""
    raw = {"id": id or str(uuid.uuid4()), "group": group, "kind": kind, "args": args or {}, "actor": actor,
           "reason": reason, "ts_ms": ts_ms}  # fmt: skip
    try:
        wire = msgspec.convert(raw, _CommandWire)
    except msgspec.ValidationError as exc:
        raise CommandError(str(exc)) from None
    return _checked(wire, None)


def encode_command(command: Command, topic: str) -> KafkaOut:
    """Keyed by group: a group's commands keep their order on the one partition."""
    wire = _CommandWire(command.id, command.group, command.kind, command.actor, command.reason, command.ts_ms,
                        command.wire_args())  # fmt: skip
    return KafkaOut(topic, command.group.encode(), _encoder.encode(wire))


def decode_command(
    key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int
) -> Command | DeadLetter:
    """A control-topic message as a `Command`, or a ``bad_command`` dead letter saying why not."""
    source = SourceRef(topic, partition, offset)

    def dead(detail: str) -> DeadLetter:
        kept = value[:MAX_COMMAND_BYTES] if value else value
        return DeadLetter(DeadLetterReason.BAD_COMMAND, detail, source, kept, key)

    if not value:
        return dead("command: the message has no value")
    if len(value) > MAX_COMMAND_BYTES:
        return dead(f"command: {len(value)} bytes is over the limit of {MAX_COMMAND_BYTES}")
    try:
        wire = _decoder.decode(value)
        return _checked(wire, source)
    except (msgspec.ValidationError, msgspec.DecodeError, CommandError) as exc:
        return dead(f"command: {exc}")


def command_of(msg: RawMessage | Message) -> Command | DeadLetter:
    """`decode_command` of a message as the flow's Kafka source hands it on (or shaped like one)."""
    if type(msg) is Message:
        return decode_command(msg.key(), msg.value(), msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
    raw = cast(RawMessage, msg)  # or shaped like one (Bytewax's KafkaSourceMessage)
    return decode_command(raw.key, raw.value, raw.topic, raw.partition, raw.offset)
