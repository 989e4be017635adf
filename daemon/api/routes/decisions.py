"""A group's decisions (promote, refuse, rollback, retire), oldest first, a page at a time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from daemon.api.deps import ContextDep, known_group
from daemon.api.schemas import DecisionPage, DecisionView, ErrorBody

__all__ = ["Limit", "Skip", "router"]

router = APIRouter(tags=["decisions"], responses={422: {"model": ErrorBody, "description": "invalid"}})

Skip = Annotated[int, Query(ge=0, le=2**53, description="how many to pass over, from the oldest")]
Limit = Annotated[int, Query(ge=1, le=1000, description="the most to return")]


@router.get("/groups/{group}/decisions", responses={404: {"model": ErrorBody}})
def decisions(ctx: ContextDep, group: str, skip: Skip = 0, limit: Limit = 100) -> DecisionPage:
    """``total`` says how many there are: ``skip = total - limit`` reads the latest page."""
    known_group(ctx, group)
    registry = ctx.deps.registry
    total = registry.decision_count(group)
    page = registry.decisions(group, skip=skip)[:limit] if skip < total else []
    items = [DecisionView.of(skip + i, d) for i, d in enumerate(page)]
    return DecisionPage(total=total, skip=skip, limit=limit, items=items)
