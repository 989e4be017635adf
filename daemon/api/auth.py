"""Who may change the daemon: a bearer token, compared in constant time.

Reads are open (they show nothing the metrics and topics do not: configs are masked). Every
mutation needs ``Authorization: Bearer <token>`` with the token of ``admin.token_file`` (a
mounted Secret) or ``HEADWATER_ADMIN__TOKEN``: without it, or with another, the answer is 401 and
nothing is written. With no token configured the API is read-only: every mutation is 403, and
the daemon says so when the API starts.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from daemon.api.deps import ContextDep

__all__ = ["Refused", "authorized"]

_bearer = HTTPBearer(auto_error=False, description="admin.token_file or HEADWATER_ADMIN__TOKEN of the daemon")


class Refused(HTTPException):
    """A mutation refused before anything was looked at: ``kind`` is unauthorized or read_only."""

    def __init__(self, status_code: int, detail: str, kind: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, detail, headers)
        self.kind = kind


def authorized(ctx: ContextDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """A route's dependency: return only for the configured token (see the module's doc)."""
    if ctx.token is None:
        msg = "the admin API is read-only: the daemon has no admin token (admin.token_file or HEADWATER_ADMIN__TOKEN)"
        raise Refused(status.HTTP_403_FORBIDDEN, msg, "read_only")
    given = credentials.credentials if credentials is not None else ""
    if not given or not hmac.compare_digest(given.encode(), ctx.token.encode()):
        msg = "this needs the admin token: Authorization: Bearer <token>" if not given else "wrong admin token"
        raise Refused(status.HTTP_401_UNAUTHORIZED, msg, "unauthorized", {"WWW-Authenticate": "Bearer"})
