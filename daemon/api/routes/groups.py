"""Groups, and a group's board: who serves, and each live model's role, accuracy, lag and trial.

Roles and trials come from the registry (each evaluator's latest verdict on the version); rolling
accuracy and lag from the model's latest report on the model-events topic (`daemon.api.reports`),
null until one is read; what serves from this process's serving board.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from daemon.api.deps import Context, ContextDep, known_group
from daemon.api.schemas import Board, BoardModel, ErrorBody, GroupList, ServingView, VoteMember, VoteView, report_fields
from dataflows.ports import VersionInfo
from dataflows.records import ModelReport

__all__ = ["router"]

router = APIRouter(tags=["groups"], responses={422: {"model": ErrorBody, "description": "invalid"}})

_ROLES = ("champion", "standby", "candidate")  # the board's order


@router.get("/groups")
def groups(ctx: ContextDep) -> GroupList:
    """The model groups this daemon trains."""
    return GroupList(groups=ctx.groups)


@router.get("/groups/{group}", responses={404: {"model": ErrorBody}})
def board(ctx: ContextDep, group: str) -> Board:
    """The group's board: what serves here, and every champion, standby and candidate version."""
    known_group(ctx, group)
    return Board(group=group, serving=_serving(ctx, group), models=_models(ctx, group))


def _serving(ctx: Context, group: str) -> ServingView | None:
    if ctx.deps.board is None:
        return None
    try:
        table = ctx.deps.board.current(group)
    except LookupError:
        return None
    vote = table.vote
    voting = None if vote is None else VoteView(choice=vote.choice, members={
        name: VoteMember(version=vote.members[name].version if name in vote.members else None, weight=weight,
                         share=None if vote.shares is None else vote.shares.get(name, 0.0))
        for name, weight in vote.weights.items()
    })  # fmt: skip
    return ServingView(
        seq=table.seq, champion=table.champion.version, canary=table.canary.version if table.canary else None,
        canary_share=table.canary_share if table.canary else 0.0, live=table.fresh.version if table.fresh else None,
        vote=voting,
    )  # fmt: skip


def _models(ctx: Context, group: str) -> list[BoardModel]:
    registry = ctx.deps.registry
    live = sorted((v for v in registry.versions(group) if v.status in _ROLES), key=lambda v: _ROLES.index(v.status))
    reports: dict[str, ModelReport] = {}
    for report in ctx.deps.reports.latest(group).values():  # by version: a slot's version changes
        if report.version not in reports or report.ts_ms >= reports[report.version].ts_ms:
            reports[report.version] = report
    return [_model(v, registry.verdicts(v.id), reports.get(v.id)) for v in live]


def _model(v: VersionInfo, verdicts: list[dict[str, Any]], report: ModelReport | None) -> BoardModel:
    trial = {str(d["evaluator"]): str(d["phase"]) for d in verdicts}  # each evaluator's latest
    return BoardModel(version=v.id, name=v.name, role=v.status, samples=v.samples, trial=trial, **report_fields(report))
