"""Issuing a command: check it, write it to the control topic, and (if asked) wait for its outcome.

In this order, and nothing is written unless every step before it passed: the group is this
daemon's (404), the registry does not refuse it already (`daemon.api.prechecks`: 404, 409, 422),
`dataflows.control.new_command` checks it as the train step will (422), the broker acknowledges it
(else 503 with its id: it may still arrive). Then ``wait_s`` polls the registry's command log,
where the train step records each command's outcome.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from confluent_kafka import KafkaException
from starlette.concurrency import run_in_threadpool

from daemon.api.deps import Context, known_group
from daemon.api.prechecks import precheck
from daemon.api.schemas import Accepted, CommandBody, CommandView
from daemon.errors import InvalidError, UnavailableError
from dataflows.control import CommandError, CommandKind, encode_command, new_command
from dataflows.kafka_io import DeliveryError
from dataflows.records import CommandRecord

__all__ = ["MAX_WAIT_S", "issue"]

MAX_WAIT_S = 60.0
_POLL_S = 0.05


async def issue(
    ctx: Context, group: str, kind: CommandKind, args: dict[str, Any], body: CommandBody, wait_s: float
) -> Accepted:
    known_group(ctx, group)
    deps = ctx.deps
    configured = [c.name for c in ctx.settings.model.candidates]
    await run_in_threadpool(precheck, deps.registry, group, kind, args, configured)
    try:
        command = new_command(group, kind, args, actor=body.actor, reason=body.reason,
                              ts_ms=int(deps.clock() * 1000))  # fmt: skip
        out = encode_command(command, ctx.control_topic)
    except CommandError as exc:
        raise InvalidError(f"{kind}: {exc}") from None
    try:
        await run_in_threadpool(deps.commands.send, out)
    except (DeliveryError, KafkaException) as exc:
        msg = f"{kind} {command.id} was not acknowledged by the broker ({exc}); look it up before sending it again"
        raise UnavailableError(msg, command_id=command.id) from None
    record = await _outcome(ctx, command.id, wait_s) if wait_s > 0 else None
    return Accepted(id=command.id, group=group, kind=kind.value,
                    outcome=CommandView.of(record) if record is not None else None)  # fmt: skip


async def _outcome(ctx: Context, command_id: str, wait_s: float) -> CommandRecord | None:
    """The command's outcome once the train step has recorded it, or None after ``wait_s``."""
    deadline = time.monotonic() + min(wait_s, MAX_WAIT_S)
    while True:
        record = await run_in_threadpool(ctx.deps.registry.command, command_id)
        left = deadline - time.monotonic()
        if record is not None or left <= 0:
            return record
        await asyncio.sleep(min(_POLL_S, left))
