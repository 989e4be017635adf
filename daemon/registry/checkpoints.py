"""Content-addressed checkpoints: ``checkpoints/<sha256>/<filename>``, written once, loaded checked.

A learner saves into a private temporary folder; the file then moves into place with one
``os.replace``, so a reader never sees half a checkpoint. Loading names the learner class by import
path and hands it the recorded digest: the learners refuse bytes that hash to anything else, and
River's pickles are read only after that check.
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import cast

from daemon.registry.errors import RegistryError
from learners import Artifact, Learner, LearnerError
from learners.base import import_path, sha256_of

__all__ = ["CheckpointStore", "learner_class_of"]


def learner_class_of(learner: Learner) -> str:
    """``"module:QualName"`` of the learner's class, as `CheckpointStore.load` imports it."""
    return f"{type(learner).__module__}:{type(learner).__qualname__}"


class CheckpointStore:
    """Checkpoint files under ``root``; paths handed in and out are relative to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def save(self, learner: Learner) -> tuple[str, str]:
        """Save the learner; return its sha256 and the checkpoint's path relative to ``root``."""
        staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=self.root))
        try:
            artifact = learner.save(staging)
            source = artifact.path.resolve()
            if not source.is_file() or not source.is_relative_to(staging.resolve()):
                msg = f"{learner_class_of(learner)}.save returned {artifact.path}, not a file in the folder it got"
                raise RegistryError(msg)
            actual = sha256_of(source)
            if actual != artifact.sha256:
                msg = (f"{learner_class_of(learner)}.save reported digest {artifact.sha256} for {source.name} but "
                       f"the file hashes to {actual}; the learner's save is broken")  # fmt: skip
                raise RegistryError(msg)
            relpath = f"{actual}/{source.name}"
            target = self.root / actual / source.name
            if not (target.is_file() and sha256_of(target) == actual):  # same bytes already stored: keep them
                target.parent.mkdir(exist_ok=True)
                os.replace(source, target)
            return actual, relpath
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def load(self, learner_class: str, relpath: str, sha256: str) -> Learner:
        """Import ``learner_class`` and load the checkpoint with it, refusing a digest that differs."""
        path = self._inside(relpath)
        cls = _import_learner_class(learner_class)
        try:
            learner = cls.load(Artifact(path=path, sha256=sha256))
        except FileNotFoundError as exc:
            msg = f"checkpoint {path} is missing; the registry's checkpoints folder was changed by hand"
            raise RegistryError(msg) from exc
        except LearnerError as exc:
            msg = f"checkpoint {path} refused by {learner_class}: {exc}"
            raise RegistryError(msg) from exc
        if not isinstance(learner, Learner):
            msg = f"{learner_class}.load returned {type(learner).__name__}, which is not a Learner"
            raise RegistryError(msg)
        return learner

    def discard(self, relpath: str) -> None:
        """Delete a stored state and its folder (the caller knows no version needs it)."""
        folder = self._inside(relpath).parent
        if folder != self.root.resolve():  # a state lies in a folder of its own: <sha256>/<file>
            shutil.rmtree(folder, ignore_errors=True)

    def _inside(self, relpath: str) -> Path:
        parts = PurePosixPath(relpath).parts
        root = self.root.resolve()
        path = (root / relpath).resolve()
        if not parts or PurePosixPath(relpath).is_absolute() or ".." in parts or not path.is_relative_to(root):
            msg = f"checkpoint path {relpath!r} leaves the checkpoints folder {root}; refusing to read it"
            raise RegistryError(msg)
        return path


def _import_learner_class(name: str) -> type[Learner]:
    try:
        target = import_path(name)
    except ValueError:
        msg = f"learner class {name!r} is not 'package.module:QualName'"
        raise RegistryError(msg) from None
    except (ImportError, AttributeError) as exc:
        msg = f"learner class {name!r} cannot be imported ({exc}); install the package that defines it"
        raise RegistryError(msg) from exc
    load = inspect.getattr_static(target, "load", None) if inspect.isclass(target) else None
    if not isinstance(load, classmethod):
        msg = f"{name!r} is not a learner class with a `load` classmethod; refusing to load a checkpoint with it"
        raise RegistryError(msg)
    return cast("type[Learner]", target)
