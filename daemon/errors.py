"""The daemon's exception root: what a caller (the admin API, the CLI) may refuse, by kind.

Each kind stands for one way a request fails, whatever carries it: the admin API answers a kind
with its status code (`daemon.api.app.STATUS`), ``headwater models`` with an exit code. The
exception carries its data (which resource, which name) and a message that says what to do.

>>> try:
...     raise NotFoundError("no version 'default/9' in group 'default'", resource="version", name="default/9")
... except HeadwaterError as exc:
...     exc.kind, exc.name
(<ErrorKind.NOT_FOUND: 'not_found'>, 'default/9')
"""

from __future__ import annotations

import enum
from typing import ClassVar

__all__ = ["ConflictError", "ErrorKind", "HeadwaterError", "InvalidError", "NotFoundError", "UnavailableError"]


class ErrorKind(enum.StrEnum):
    NOT_FOUND = "not_found"  # no such group, version or model
    CONFLICT = "conflict"  # valid, but not as things stand (e.g. promote the champion)
    INVALID = "invalid"  # cannot be applied as written
    UNAVAILABLE = "unavailable"  # a collaborator (the broker) did not answer; try again


class HeadwaterError(Exception):
    """A request the daemon refuses; ``kind`` says how, the message says why."""

    kind: ClassVar[ErrorKind]


class NotFoundError(HeadwaterError, LookupError):
    kind = ErrorKind.NOT_FOUND

    def __init__(self, message: str, *, resource: str, name: str) -> None:
        super().__init__(message)
        self.resource = resource
        self.name = name


class ConflictError(HeadwaterError):
    kind = ErrorKind.CONFLICT


class InvalidError(HeadwaterError, ValueError):
    kind = ErrorKind.INVALID


class UnavailableError(HeadwaterError):
    """Not done, or not known to be done: ``command_id`` (if any) says what to look up later."""

    kind = ErrorKind.UNAVAILABLE

    def __init__(self, message: str, *, command_id: str | None = None) -> None:
        super().__init__(message)
        self.command_id = command_id
