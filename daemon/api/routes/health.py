"""Probes and metrics: ``/healthz`` (the process answers), ``/readyz`` (it should get traffic),
``/metrics`` (Prometheus' text format, of the collector registry handed in)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from daemon.api.deps import ContextDep
from daemon.api.schemas import Alive, Health

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> Alive:
    """The process answers: nothing else is checked (a liveness probe must not fail with the broker)."""
    return Alive()


@router.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "not ready"}})
def readyz(ctx: ContextDep) -> Response:
    """200 when ready; 503 with the reasons (broker unreachable, no champion yet, recovering)."""
    reasons = ctx.deps.readiness.reasons()
    code = status.HTTP_503_SERVICE_UNAVAILABLE if reasons else status.HTTP_200_OK
    return JSONResponse(Health(ready=not reasons, reasons=reasons).model_dump(), status_code=code)


@router.get(
    "/metrics", response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
                     "description": "Prometheus text format"}},
)  # fmt: skip
def metrics(ctx: ContextDep) -> Response:
    """Every metric of the daemon's collector registry (names: docs/metrics.md)."""
    return Response(generate_latest(ctx.deps.collector), media_type=CONTENT_TYPE_LATEST)
