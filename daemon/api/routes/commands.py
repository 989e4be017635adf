"""Operators' commands: the log of what became of them, and one route per kind to issue one.

Each mutation needs the admin token (`daemon.api.auth`) and a ``reason``; ``actor`` in the body
says who asks (default ``api``). It answers 202 with the command's id once the broker has it, or
— with ``?wait_s=`` — 200 with its outcome if the train step recorded one within that time.
Refused before anything is written: 401/403 (token), 404 (group, version or model), 409
(conflict), 422 (invalid); see `daemon.api.issue` for the order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.types import DecoratedCallable

from daemon.api.auth import authorized
from daemon.api.deps import ContextDep, known_group
from daemon.api.issue import MAX_WAIT_S, issue
from daemon.api.routes.decisions import Limit, Skip
from daemon.api.schemas import (
    Accepted,
    AddCandidateBody,
    CanaryCeilingBody,
    CommandBody,
    CommandPage,
    CommandView,
    ErrorBody,
    ModelBody,
    PromoteBody,
    ReleaseQuarantineBody,
    ReplayBody,
    RetireBody,
    RollbackBody,
)
from daemon.errors import NotFoundError
from dataflows.control import CommandKind

__all__ = ["router"]

router = APIRouter(tags=["commands"], responses={422: {"model": ErrorBody, "description": "invalid"}})

WaitS = Annotated[float, Query(ge=0, le=MAX_WAIT_S, description="wait this long for the outcome (0: do not wait)")]

_REFUSALS: dict[int | str, dict[str, Any]] = {
    200: {"model": Accepted, "description": "its outcome, recorded within wait_s"},
    **{code: {"model": ErrorBody, "description": what} for code, what in (
        (401, "no admin token, or a wrong one"), (403, "read-only: the daemon has no admin token"),
        (404, "unknown group, version or model"), (409, "conflicts with who serves"), (422, "invalid"),
        (503, "the broker did not acknowledge it"),
    )},
}  # fmt: skip


def _mutation(path: str, summary: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    return router.post(f"/groups/{{group}}/commands/{path}", status_code=status.HTTP_202_ACCEPTED, summary=summary,
                       dependencies=[Depends(authorized)], responses=_REFUSALS)  # fmt: skip


async def _issue(ctx: ContextDep, response: Response, group: str, kind: CommandKind, args: dict[str, Any],
                 body: CommandBody, wait_s: float) -> Accepted:  # fmt: skip
    accepted = await issue(ctx, group, kind, args, body, wait_s)
    if accepted.outcome is not None:
        response.status_code = status.HTTP_200_OK
    return accepted


@router.get("/groups/{group}/commands", responses={404: {"model": ErrorBody}})
def commands(ctx: ContextDep, group: str, skip: Skip = 0, limit: Limit = 100) -> CommandPage:
    """Every command the train step read, oldest first, with its outcome."""
    known_group(ctx, group)
    found = ctx.deps.registry.commands(group, skip=skip, limit=limit + 1)
    items = [CommandView.of(r) for r in found[:limit]]
    return CommandPage(skip=skip, limit=limit, more=len(found) > limit, items=items)


@router.get("/groups/{group}/commands/{command_id}", responses={404: {"model": ErrorBody}})
def command(ctx: ContextDep, group: str, command_id: str) -> CommandView:
    """What became of a command: 404 until the train step has read it."""
    known_group(ctx, group)
    record = ctx.deps.registry.command(command_id)
    if record is None or record.group != group:
        msg = f"command {command_id!r} of group {group!r} has not been read (yet): ask again, or check its id"
        raise NotFoundError(msg, resource="command", name=command_id)
    return CommandView.of(record)


@_mutation("pause", "Pause learning")
async def pause(ctx: ContextDep, response: Response, group: str, body: ModelBody, wait_s: WaitS = 0) -> Accepted:
    """A candidate (``model``), or every one, stops learning; it still scores."""
    return await _issue(ctx, response, group, CommandKind.PAUSE, {"model": body.model}, body, wait_s)


@_mutation("resume", "Resume learning")
async def resume(ctx: ContextDep, response: Response, group: str, body: ModelBody, wait_s: WaitS = 0) -> Accepted:
    """A paused candidate (``model``), or every one, learns again."""
    return await _issue(ctx, response, group, CommandKind.RESUME, {"model": body.model}, body, wait_s)


@_mutation("freeze", "Freeze decisions")
async def freeze(ctx: ContextDep, response: Response, group: str, body: CommandBody, wait_s: WaitS = 0) -> Accepted:
    """Verdicts are still reported; nothing is promoted, refused or rolled back; the canary's share is held."""
    return await _issue(ctx, response, group, CommandKind.FREEZE, {}, body, wait_s)


@_mutation("unfreeze", "Unfreeze decisions")
async def unfreeze(ctx: ContextDep, response: Response, group: str, body: CommandBody, wait_s: WaitS = 0) -> Accepted:
    return await _issue(ctx, response, group, CommandKind.UNFREEZE, {}, body, wait_s)


@_mutation("promote", "Promote a candidate or a version")
async def promote(ctx: ContextDep, response: Response, group: str, body: PromoteBody, wait_s: WaitS = 0) -> Accepted:
    """A candidate's model as it is now (``model``), or a version with a checkpoint (``version``)."""
    args = {"model": body.model, "version": body.version, "skip_golden": body.skip_golden}
    return await _issue(ctx, response, group, CommandKind.PROMOTE, args, body, wait_s)


@_mutation("rollback", "Roll back")
async def rollback(ctx: ContextDep, response: Response, group: str, body: RollbackBody, wait_s: WaitS = 0) -> Accepted:
    """Serve the standby again, or a version that served before (``version``)."""
    return await _issue(ctx, response, group, CommandKind.ROLLBACK, {"version": body.version}, body, wait_s)


@_mutation("add-candidate", "Add a candidate")
async def add_candidate(
    ctx: ContextDep, response: Response, group: str, body: AddCandidateBody, wait_s: WaitS = 0
) -> Accepted:
    """A new candidate from a fragment as in model.candidates of the config file."""
    return await _issue(ctx, response, group, CommandKind.ADD_CANDIDATE, {"candidate": body.candidate}, body, wait_s)


@_mutation("retire", "Retire a candidate")
async def retire(ctx: ContextDep, response: Response, group: str, body: RetireBody, wait_s: WaitS = 0) -> Accepted:
    """The candidate stops learning and is never promoted (the champion is never retired)."""
    return await _issue(ctx, response, group, CommandKind.RETIRE, {"model": body.model}, body, wait_s)


@_mutation("canary-ceiling", "Set the canary's ceiling")
async def canary_ceiling(
    ctx: ContextDep, response: Response, group: str, body: CanaryCeilingBody, wait_s: WaitS = 0
) -> Accepted:
    """The canary serves at most ``share`` of the keys; 0 takes the canary route off."""
    return await _issue(ctx, response, group, CommandKind.SET_CANARY_CEILING, {"share": body.share}, body, wait_s)


@_mutation("replay", "Replay stretches of the input into a new candidate")
async def replay(ctx: ContextDep, response: Response, group: str, body: ReplayBody, wait_s: WaitS = 0) -> Accepted:
    """A new candidate (as add-candidate takes it) learns these offsets of the input topics, read again off the
    live flow, then joins the group; a stretch retention deleted is refused, naming the earliest offset left."""
    args = {"candidate": body.candidate, "ranges": [r.model_dump() for r in body.ranges]}
    return await _issue(ctx, response, group, CommandKind.REPLAY, args, body, wait_s)


@_mutation("release-quarantine", "Release the labels the quarantine holds")
async def release_quarantine(
    ctx: ContextDep, response: Response, group: str, body: ReleaseQuarantineBody, wait_s: WaitS = 0
) -> Accepted:
    """The label quarantine ends: what it holds is learned (``learn``), in order, or dropped; refused (an outcome
    of ``rejected``) when it holds nothing."""
    return await _issue(ctx, response, group, CommandKind.RELEASE_QUARANTINE, {"learn": body.learn}, body, wait_s)
