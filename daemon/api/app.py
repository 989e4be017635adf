"""`create_app`: the admin API as a FastAPI application over the daemon's collaborators.

No CORS middleware: browsers on other origins get no access (the API is for operators' tools
and probes, not pages). Refusals share one body, `daemon.api.schemas.ErrorBody`: ``detail`` says
why, ``kind`` how (the status codes of `STATUS`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from daemon.api.deps import ApiDeps, Context, HttpMetrics
from daemon.api.routes import ROUTERS
from daemon.config import Settings
from daemon.errors import ErrorKind, HeadwaterError, UnavailableError

__all__ = ["API_VERSION", "STATUS", "create_app"]

log = logging.getLogger("headwater")

API_VERSION = "1"  # the API's own version: the OpenAPI document changes with it, not with the package's

STATUS = {ErrorKind.NOT_FOUND: 404, ErrorKind.CONFLICT: 409, ErrorKind.INVALID: 422, ErrorKind.UNAVAILABLE: 503}

_DESCRIPTION = """Health, readiness and metrics; the groups' boards, versions, decisions and commands;
and one route per operator's command. Commands need `Authorization: Bearer <admin token>`."""


def create_app(settings: Settings, deps: ApiDeps) -> FastAPI:
    """The admin API of a daemon running with ``settings``; the token is read once, here (a daemon
    without one serves a read-only API, and says so)."""
    token = settings.admin.bearer_token()
    if token is None:
        log.warning("the admin API is read-only: no admin token (admin.token_file or HEADWATER_ADMIN__TOKEN); "
                    "every command is refused with 403")  # fmt: skip
    app = FastAPI(title="Headwater admin API", version=API_VERSION, description=_DESCRIPTION, docs_url=None,
                  redoc_url=None)  # fmt: skip
    app.state.context = Context(settings, deps, token)
    for router in ROUTERS:
        app.include_router(router)
    app.add_exception_handler(HeadwaterError, _refused)
    app.add_exception_handler(HTTPException, _http_refused)
    app.add_exception_handler(RequestValidationError, _invalid)
    if deps.http_metrics is not None:
        app.add_middleware(RequestMetrics, metrics=deps.http_metrics)
    return app


def _body(detail: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"detail": detail, "kind": kind, **extra}


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HeadwaterError)
    extra = {"command_id": exc.command_id} if isinstance(exc, UnavailableError) else {}
    return JSONResponse(_body(str(exc), exc.kind.value, **extra), status_code=STATUS[exc.kind])


_HTTP_KINDS = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


async def _http_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kind = getattr(exc, "kind", None) or _HTTP_KINDS.get(exc.status_code, "http")
    return JSONResponse(_body(str(exc.detail), kind), status_code=exc.status_code, headers=exc.headers)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return JSONResponse(_body(where, ErrorKind.INVALID.value), status_code=422)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """Counts every request by method, route template (``/groups/{group}``, never the path a
    client sent: labels stay bounded) and status; ``unmatched`` for paths no route takes."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, code = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.http_request(method, route, code, time.perf_counter() - started)
