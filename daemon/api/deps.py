"""What the admin API works with, handed in by the daemon, and how a route asks for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Protocol

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry

from daemon.api.health import Readiness
from daemon.api.producer import CommandSink
from daemon.api.reports import ModelReports
from daemon.config import Settings
from daemon.errors import NotFoundError
from dataflows.ports import Registry
from dataflows.serve import ServingBoard

__all__ = ["ApiDeps", "Context", "ContextDep", "HttpMetrics", "known_group"]


class HttpMetrics(Protocol):
    """Where the API counts its requests (`daemon.metrics.PrometheusMetrics` in the daemon)."""

    def http_request(self, method: str, route: str, status: int, duration_s: float) -> None: ...


@dataclass(frozen=True)
class ApiDeps:
    """The API's collaborators: the process's registry and serving board, where commands go, the
    latest model reports, the metrics it serves and counts into, readiness, and a clock."""

    registry: Registry
    commands: CommandSink
    board: ServingBoard | None = None  # None: a process that serves nothing (readiness asks the registry)
    reports: ModelReports = field(default_factory=ModelReports)
    collector: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))
    readiness: Readiness = field(default_factory=Readiness)
    http_metrics: HttpMetrics | None = None
    clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class Context:
    """What a route gets: the settings, the collaborators, and the token mutations need (None:
    the API is read-only)."""

    settings: Settings
    deps: ApiDeps
    token: str | None

    @property
    def groups(self) -> list[str]:
        return [self.settings.model.group]

    @property
    def control_topic(self) -> str:
        topic = self.settings.topics().control
        assert topic is not None  # Settings.topics() always names it
        return topic


def _context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(_context)]


def known_group(ctx: Context, group: str) -> str:
    if group not in ctx.groups:
        msg = f"no group {group!r} in this daemon (groups: {ctx.groups})"
        raise NotFoundError(msg, resource="group", name=group)
    return group
