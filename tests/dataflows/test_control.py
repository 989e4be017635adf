"""Commands on the control topic are checked strictly: a malformed one is a ``bad_command`` dead
letter that says what is wrong, a good one round-trips through the wire."""

from __future__ import annotations

import json

import pytest

from dataflows.control import (
    CanaryCeilingArgs,
    Command,
    CommandError,
    CommandKind,
    ModelArgs,
    PromoteArgs,
    decode_command,
    encode_command,
    new_command,
)
from dataflows.records import DeadLetter, DeadLetterReason, SourceRef

GOOD = {"id": "c1", "group": "g", "kind": "pause", "args": {"model": "fork"}, "actor": "ops", "reason": "incident",
        "ts_ms": 5}  # fmt: skip


def _decode(value: bytes | None) -> Command | DeadLetter:
    return decode_command(b"g", value, "ctl", 0, 7)


def test_a_command_round_trips_through_the_wire() -> None:
    cmd = new_command("g", "set_canary_ceiling", {"share": 0.1}, actor="ops", reason="too much risk", ts_ms=9)
    out = encode_command(cmd, "ctl")
    assert out.topic == "ctl" and out.key == b"g"
    back = _decode(out.value)
    assert isinstance(back, Command)
    assert (back.id, back.kind, back.args, back.source) == (cmd.id, CommandKind.SET_CANARY_CEILING,
                                                            CanaryCeilingArgs(0.1), SourceRef("ctl", 0, 7))  # fmt: skip


def test_defaults_fill_in_and_args_are_typed() -> None:
    back = _decode(json.dumps(GOOD | {"kind": "resume", "args": {}}).encode())
    assert isinstance(back, Command) and back.args == ModelArgs(None)
    back = _decode(json.dumps(GOOD | {"kind": "promote", "args": {"version": "g/3"}}).encode())
    assert isinstance(back, Command) and back.args == PromoteArgs(version="g/3")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"kind": "reboot"}, "Invalid enum value 'reboot'"),
        ({"reason": ""}, "at `$.reason`"),
        ({"extra": 1}, "unknown field `extra`"),
        ({"args": {"model": "fork", "force": True}}, "pause arguments: Object contains unknown field `force`"),
        ({"kind": "set_canary_ceiling", "args": {"share": 1.5}}, "Expected `float` <= 1.0"),
        ({"kind": "promote", "args": {}}, "either a candidate's name (args.model) or a version"),
        ({"kind": "retire", "args": {}}, "retire needs the candidate's name"),
        ({"ts_ms": "yesterday"}, "Expected `int`, got `str`"),
        ({"kind": "replay", "args": {"candidate": {"name": "r"}, "ranges": []}}, "length >= 1"),
        (
            {
                "kind": "replay",
                "args": {
                    "candidate": {"name": "r"},
                    "ranges": [{"topic": "e", "partition": 0, "first": -1, "last": 3}],
                },
            },
            ">= 0",
        ),
    ],
)
def test_a_malformed_command_is_a_dead_letter_that_says_why(change: dict[str, object], needle: str) -> None:
    out = _decode(json.dumps(GOOD | change).encode())
    assert isinstance(out, DeadLetter)
    assert out.reason is DeadLetterReason.BAD_COMMAND
    assert needle in out.detail
    assert out.source == SourceRef("ctl", 0, 7) and out.original_key == b"g"


@pytest.mark.parametrize(("value", "needle"), [(None, "no value"), (b"{not json", "malformed"),
                                               (b"x" * 70_000, "over the limit")])  # fmt: skip
def test_bytes_that_are_no_command_are_dead_letters(value: bytes | None, needle: str) -> None:
    out = _decode(value)
    assert isinstance(out, DeadLetter) and needle in out.detail


def test_new_command_refuses_what_the_train_step_would() -> None:
    with pytest.raises(CommandError, match="unknown field `modle`"):
        new_command("g", "pause", {"modle": "x"}, actor="ops", reason="r", ts_ms=0)
    with pytest.raises(CommandError, match="reason"):
        new_command("g", "freeze", {}, actor="ops", reason="   ", ts_ms=0)
