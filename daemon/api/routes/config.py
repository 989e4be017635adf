"""The daemon's effective configuration (file, environment and flags merged), secrets masked."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from daemon.api.deps import ContextDep
from daemon.config import mask_secrets

__all__ = ["router"]

router = APIRouter(tags=["config"])


@router.get("/config")
def config(ctx: ContextDep) -> dict[str, Any]:
    """Settings as the daemon runs them; tokens, passwords and keys read ``***``."""
    masked: dict[str, Any] = mask_secrets(ctx.settings.model_dump(mode="json"))
    return masked
