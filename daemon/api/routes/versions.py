"""A group's versions with the offsets they learned from and their trials; one version with its
lineage (its ancestors) and every verdict on it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from daemon.api.deps import ContextDep, known_group
from daemon.api.schemas import ErrorBody, VerdictView, VersionDetail, VersionList, VersionView
from daemon.errors import NotFoundError
from dataflows.ports import Registry, VersionInfo

__all__ = ["router"]

router = APIRouter(tags=["versions"], responses={422: {"model": ErrorBody, "description": "invalid"}})


@router.get("/groups/{group}/versions", responses={404: {"model": ErrorBody}})
def versions(
    ctx: ContextDep, group: str,
    status: Annotated[str | None, Query(description="only versions of this status (champion, standby, ...)")] = None,
) -> VersionList:  # fmt: skip
    """Every version of the group, oldest first."""
    known_group(ctx, group)
    registry = ctx.deps.registry
    found = [v for v in registry.versions(group) if status is None or v.status == status]
    return VersionList(group=group, versions=[VersionView.of(v, registry.verdicts(v.id)) for v in found])


@router.get("/groups/{group}/versions/{number}", responses={404: {"model": ErrorBody}})
def version(ctx: ContextDep, group: str, number: Annotated[int, PathParam(ge=1, le=2**53)]) -> VersionDetail:
    """Version ``{group}/{number}``: what it learned from, its ancestors, every verdict on it."""
    known_group(ctx, group)
    registry, version_id = ctx.deps.registry, f"{group}/{number}"
    try:
        chain = _lineage(registry, version_id)
    except LookupError:
        msg = f"no version {version_id!r} (GET /groups/{group}/versions lists them)"
        raise NotFoundError(msg, resource="version", name=version_id) from None
    views = [VersionView.of(v, registry.verdicts(v.id)) for v in chain]
    verdicts = [VerdictView(evaluator=d["evaluator"], phase=d["phase"], reason=d["reason"], evidence=d["evidence"],
                            ts_ms=d["ts_ms"]) for d in registry.verdicts(version_id)]  # fmt: skip
    return VersionDetail(version=views[0], lineage=views[1:], verdicts=verdicts)


def _lineage(registry: Registry, version_id: str) -> list[VersionInfo]:
    """The version and its ancestors along ``parent``, newest first."""
    chain = [registry.version(version_id)]
    while chain[-1].parent is not None and chain[-1].parent not in {v.id for v in chain}:
        chain.append(registry.version(chain[-1].parent))
    return chain
