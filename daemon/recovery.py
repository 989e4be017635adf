"""The recovery store: Bytewax's snapshots, and a manifest saying what they were made for.

Bytewax resumes a flow from its recovery store without asking whether the state still fits the
configuration. A store written for other features or classes would hand the group models that
read the wrong columns, so the store carries ``headwater-recovery.json`` and a start with a
configuration that does not match it fails at once, naming what changed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from bytewax.recovery import RecoveryConfig, init_db_dir

from daemon.config import ConfigError
from dataflows import FlowConfig
from dataflows.kafka_io import PartNames
from dataflows.train import STATE_FORMAT
from dataflows.train.migrate import MIGRATES_FROM

__all__ = ["MANIFEST", "RecoveryMismatchError", "manifest_for", "prepare_recovery", "source_part_names"]

MANIFEST = "headwater-recovery.json"
CHECKED = ("group", "features", "classes")  # the state cannot be used if any differs

log = logging.getLogger("headwater")


class RecoveryMismatchError(ConfigError):
    """The recovery store was written for a different group, schema or state format."""


def manifest_for(config: FlowConfig) -> dict[str, Any]:
    """What the store is for, as it reads back from JSON (tuples become lists), so it compares."""
    manifest = {
        "format": STATE_FORMAT,
        "group": config.group,
        "features": list(config.schema.features),
        "classes": list(config.schema.classes),
        "learner": {"name": config.learner.name, "params": dict(config.learner.params), "seed": config.learner.seed},
        "source_parts": "balanced",  # how the input's partitions are named: their offsets are stored under it
    }
    if config.schema.categories:  # absent when there are none: stores made before categories still fit
        manifest["categories"] = {name: list(values) for name, values in config.schema.categories.items()}
    result: dict[str, Any] = json.loads(json.dumps(manifest, default=str))
    return result


def prepare_recovery(directory: Path, partitions: int, config: FlowConfig) -> RecoveryConfig:
    """Create the store on first use; otherwise check that it fits ``config`` before resuming."""
    wanted = manifest_for(config)
    path = directory / MANIFEST
    migrating = False
    if any(directory.glob("*.sqlite3")):
        if path.exists():
            migrating = _check(directory, _read(path), wanted)
    else:
        directory.mkdir(parents=True, exist_ok=True)
        init_db_dir(directory, partitions)
    if migrating or not path.exists():  # the flow reads the older snapshots and carries them forward
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(wanted, indent=2) + "\n")
        os.replace(tmp, path)
    return RecoveryConfig(str(directory))


def source_part_names(directory: Path) -> PartNames:
    """How the store names the input's partitions. A store made before the manifest said so holds
    its offsets under Bytewax's own names ("legacy"): renaming them would lose the offsets."""
    path = directory / MANIFEST
    names = _read(path).get("source_parts", "legacy") if path.exists() else "balanced"
    if names == "legacy":
        log.warning("%s keeps Bytewax's partition names: workers may serve unequal shares of the partitions; "
                    "a new runtime.recovery_dir balances them", directory)  # fmt: skip
        return "legacy"
    return "balanced"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        msg = f"runtime.recovery_dir: cannot read {path}: {exc}"
        raise RecoveryMismatchError(msg) from exc
    if not isinstance(data, dict):
        msg = f"runtime.recovery_dir: {path} is not a JSON object"
        raise RecoveryMismatchError(msg)
    return data


def _check(directory: Path, recorded: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Refuse a store that does not fit; True if its state is of an older format, to be migrated."""
    found = recorded.get("format")
    if found != STATE_FORMAT and found not in MIGRATES_FROM:
        msg = (
            f"runtime.recovery_dir: {directory} holds state of format {found!r}; this Headwater reads format "
            f"{STATE_FORMAT} and migrates {list(MIGRATES_FROM)}. Use the Headwater that wrote it, or point "
            "runtime.recovery_dir at a new directory."
        )
        raise RecoveryMismatchError(msg)
    changed = [
        f"{key}: the store has {recorded.get(key)!r}, the config says {wanted[key]!r}"
        for key in CHECKED
        if recorded.get(key) != wanted[key]
    ]
    # A category's code is its position in the list: the models learned codes of the recorded lists.
    if recorded.get("categories", {}) != wanted.get("categories", {}):
        changed.append(f"categories: the store has {recorded.get('categories', {})!r}, "
                       f"the config says {wanted.get('categories', {})!r}")  # fmt: skip
    if changed:
        msg = (
            f"runtime.recovery_dir: {directory} holds state that does not fit this config "
            f"({'; '.join(changed)}). Restore the old settings, or point runtime.recovery_dir at a "
            "new directory to start from untrained models."
        )
        raise RecoveryMismatchError(msg)
    if recorded.get("learner", wanted["learner"]) != wanted["learner"]:
        log.warning(
            "%s was started with learner %s; model.learner now says %s. The recovered models carry on; "
            "point runtime.recovery_dir at a new directory to start from the configured learner.",
            directory, recorded["learner"], wanted["learner"],
        )  # fmt: skip
    if found != STATE_FORMAT:
        log.warning("%s holds state of format %s: it is migrated to format %s as it is resumed",
                    directory, found, STATE_FORMAT)  # fmt: skip
        return True
    return False
