"""What the admin API checks before it writes a command: the refusals it can be sure of.

The train step is the judge of every command (it alone knows which candidates learn, which is
paused): it rejects what cannot be applied and says why in the command's outcome. The API refuses
early, with nothing written, only what the registry already shows cannot be applied — an unknown
version or model (404), a conflict with who serves (409), a fragment the config file would refuse
(422). A command that passes may still be rejected by the train step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from daemon.errors import ConflictError, InvalidError, NotFoundError
from daemon.model_settings import CandidateSettings
from dataflows.control import CommandKind
from dataflows.ports import Registry, VersionInfo

__all__ = ["precheck"]

_NOT_CANDIDATES = ("champion", "standby")


def precheck(
    registry: Registry, group: str, kind: CommandKind, args: dict[str, Any], configured: Iterable[str]
) -> None:
    """Raise what the registry shows about ``kind`` with ``args`` on ``group`` (see the module's doc);
    ``configured``: the candidates' names in the daemon's config."""
    if kind in (CommandKind.PAUSE, CommandKind.RESUME, CommandKind.RETIRE) and args.get("model") is not None:
        _candidate(registry, group, str(args["model"]), kind, configured)
    elif kind is CommandKind.PROMOTE:
        if args.get("model") is not None:
            _candidate(registry, group, str(args["model"]), kind, configured)
        if args.get("version") is not None:
            _servable(registry, group, str(args["version"]), kind)
    elif kind is CommandKind.ROLLBACK:
        if args.get("version") is not None:
            info = _servable(registry, group, str(args["version"]), kind)
            if info.promoted_ms is None:
                msg = f"rollback: {info.id} never served; roll back only to a version that was champion (or promote it)"
                raise ConflictError(msg)
        elif not any(v.status == "standby" for v in registry.versions(group)):
            msg = f"rollback: group {group!r} has no standby; name a version that served before (version)"
            raise ConflictError(msg)
    elif kind in (CommandKind.ADD_CANDIDATE, CommandKind.REPLAY):
        _new_candidate(registry, group, args.get("candidate"), kind)


def _candidate(registry: Registry, group: str, name: str, kind: CommandKind, configured: Iterable[str]) -> None:
    if name in _NOT_CANDIDATES:
        msg = f"{kind}: {name!r} is not a candidate (name a candidate of group {group!r})"
        raise InvalidError(msg)
    known = set(configured) | {v.name for v in registry.versions(group)}
    if name not in known:
        names = sorted(known - set(_NOT_CANDIDATES))
        msg = f"{kind}: group {group!r} has never had a candidate {name!r} (candidates: {names})"
        raise NotFoundError(msg, resource="model", name=name)


def _servable(registry: Registry, group: str, version: str, kind: CommandKind) -> VersionInfo:
    try:
        info = registry.version(version)
    except LookupError:
        msg = f"{kind}: no version {version!r} in the registry (GET /groups/{group}/versions lists them)"
        raise NotFoundError(msg, resource="version", name=version) from None
    if info.group != group:
        msg = f"{kind}: {version} belongs to group {info.group!r}, not {group!r}"
        raise NotFoundError(msg, resource="version", name=version)
    if info.status == "champion":
        msg = f"{kind}: {version} is the champion of {group!r} already"
        raise ConflictError(msg)
    if info.checkpoint_sha256 is None:
        msg = f"{kind}: {version} has no checkpoint to serve from"
        raise ConflictError(msg)
    return info


def _new_candidate(registry: Registry, group: str, fragment: Any, kind: CommandKind) -> None:
    try:
        candidate = CandidateSettings.model_validate(fragment)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'candidate'}: {e['msg']}" for e in exc.errors())
        msg = f"{kind}: the candidate is not valid as model.candidates would take it: {where}"
        raise InvalidError(msg) from None
    if any(v.name == candidate.name and v.status == "candidate" for v in registry.versions(group)):
        msg = f"{kind}: group {group!r} has a candidate named {candidate.name!r} already; retire it first"
        raise ConflictError(msg)
