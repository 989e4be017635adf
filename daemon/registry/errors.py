"""The registry's exception tree: every refusal says what, which id, and what to do."""

from __future__ import annotations

__all__ = ["RegistryError", "UnknownVersionError"]


class RegistryError(Exception):
    """The registry refused a request, or its files cannot be trusted."""


class UnknownVersionError(RegistryError, LookupError):
    """No version has this id; a ``LookupError`` too, so callers that only know the protocol can catch it."""

    def __init__(self, version_id: str, where: str) -> None:
        self.version_id = version_id
        super().__init__(f"no model version {version_id!r} in the registry at {where}; list the group's versions")
