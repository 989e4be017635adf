"""`SqliteRegistry`: model versions, offset lineage, verdicts, decisions and commands in one SQLite file.

The registry is embedded: a directory holding ``registry.sqlite3`` and ``checkpoints/``, written by
one daemon process. The flow's workers call it from their own threads, so one lock guards the single
connection. ``record_learning`` runs for every model on every micro-batch; each version's merged
ranges are kept in memory so a call costs one small transaction (WAL, ``synchronous=NORMAL``: a
commit does not wait for the disk, and a crash loses at most the last few calls, never the file).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from daemon.registry.checkpoints import CheckpointStore, learner_class_of
from daemon.registry.codec import dumps, loads
from daemon.registry.commands import insert_command, select_commands
from daemon.registry.errors import RegistryError, UnknownVersionError
from daemon.registry.lineage import merge_ranges
from daemon.registry.schema import STATUSES, connect
from dataflows.ports import DECISION_ACTIONS, CheckpointRef, Decision, OffsetRange, VersionInfo
from dataflows.records import CommandRecord
from learners import Learner

__all__ = ["ACTIONS", "SqliteRegistry", "framework_of"]

ACTIONS = DECISION_ACTIONS


_FRAMEWORKS = {"learners.river_learner": "river", "learners.torch_learner": "torch", "learners.moa": "moa"}


def framework_of(learner: Learner) -> str:
    """``river``, ``torch``, ``moa``, or the top-level package of a user's learner class."""
    module = type(learner).__module__
    return _FRAMEWORKS.get(module, module.partition(".")[0])


class SqliteRegistry:
    """The `dataflows.ports.Registry` of a daemon, kept in ``directory``.

    >>> import tempfile
    >>> from learners import LearnerSpec, build_learner
    >>> learner = build_learner(LearnerSpec("river-logreg"), n_features=1, n_classes=2, feature_names=["x"])
    >>> with tempfile.TemporaryDirectory() as tmp, SqliteRegistry(Path(tmp)) as registry:
    ...     v = registry.create_version("default", name="champion", parent=None, learner=learner, config={},
    ...                                 ts_ms=0, status="champion")
    ...     registry.record_learning(v.id, [OffsetRange("events", 0, 0, 99)], samples=100)
    ...     registry.record_learning(v.id, [OffsetRange("events", 0, 100, 149)], samples=50)
    ...     registry.version(v.id).ranges, registry.version(v.id).samples
    ((OffsetRange(topic='events', partition=0, first=0, last=149),), 150)
    """

    def __init__(self, directory: Path, *, db_path: Path | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.db_path = db_path if db_path is not None else directory / "registry.sqlite3"
        self._checkpoints = CheckpointStore(directory / "checkpoints")
        self._conn = connect(self.db_path)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._ranges: dict[str, list[OffsetRange]] = {}  # version id -> merged ranges, as in the db
        self._closed = False

    # -- versions ---------------------------------------------------------------------------------

    def create_version(
        self,
        group: str,
        *,
        name: str,
        parent: str | None,
        learner: Learner,
        config: Mapping[str, Any],
        ts_ms: int,
        status: str = "candidate",
    ) -> VersionInfo:
        if status not in STATUSES:
            msg = f"cannot create a version of group {group!r} with status {status!r}: use one of {STATUSES}"
            raise RegistryError(msg)
        if not group:
            msg = "cannot create a version without a group name"
            raise RegistryError(msg)
        with self._locked():
            with self._transaction() as db:
                if parent is not None:
                    self._row(db, parent)
                next_number = db.execute(
                    'SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE "group" = ?', (group,)
                )
                number: int = next_number.fetchone()[0]
                version_id = f"{group}/{number}"
                if status == "champion":
                    self._refuse_second_champion(db, group, version_id, allowed=None)
                db.execute(
                    "INSERT INTO versions (id, \"group\", number, name, parent, framework, learner_class, config,"
                    " status, created_ms, promoted_ms, retired_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (version_id, group, number, name, parent, framework_of(learner),
                     learner_class_of(learner), dumps(config), status, ts_ms,
                     ts_ms if status == "champion" else None, ts_ms if status == "retired" else None),
                )  # fmt: skip
                info = self._info(self._row(db, version_id), [])
            self._ranges[version_id] = []  # after the commit
        return info

    def version(self, version_id: str) -> VersionInfo:
        with self._locked():
            return self._info(self._row(self._conn, version_id), self._stored_ranges(version_id))

    def versions(self, group: str) -> list[VersionInfo]:
        with self._locked():
            rows = self._conn.execute('SELECT * FROM versions WHERE "group" = ? ORDER BY number', (group,)).fetchall()
            return [self._info(row, self._stored_ranges(row["id"])) for row in rows]

    def champion(self, group: str) -> VersionInfo | None:
        with self._locked():
            row = self._conn.execute(
                "SELECT * FROM versions WHERE \"group\" = ? AND status = 'champion'", (group,)
            ).fetchone()
            return None if row is None else self._info(row, self._stored_ranges(row["id"]))

    def lineage(self, version_id: str) -> list[VersionInfo]:
        """The version and its ancestors along ``parent``, newest first."""
        with self._locked():
            chain: list[VersionInfo] = []
            next_id: str | None = version_id
            while next_id is not None and next_id not in {v.id for v in chain}:  # a parent precedes its child
                row = self._row(self._conn, next_id)
                chain.append(self._info(row, self._stored_ranges(next_id)))
                next_id = row["parent"]
            return chain

    # -- learning ---------------------------------------------------------------------------------

    def record_learning(self, version: str, ranges: Sequence[OffsetRange], samples: int) -> None:
        if samples < 0:
            msg = f"version {version!r} cannot learn from {samples} samples"
            raise RegistryError(msg)
        with self._locked():
            have = self._ranges.get(version)
            if have is None:
                self._row(self._conn, version)
                have = self._stored_ranges(version)
            merged = merge_ranges(have, ranges)
            if merged == have and samples == 0:
                return
            with self._transaction() as db:
                if merged != have:
                    db.execute("DELETE FROM ranges WHERE version = ?", (version,))
                    db.executemany(
                        "INSERT INTO ranges (version, topic, partition, first, last) VALUES (?, ?, ?, ?, ?)",
                        [(version, r.topic, r.partition, r.first, r.last) for r in merged],
                    )
                if samples:
                    db.execute("UPDATE versions SET samples = samples + ? WHERE id = ?", (samples, version))
            self._ranges[version] = merged

    # -- verdicts and decisions -------------------------------------------------------------------

    def record_verdict(
        self, version: str, evaluator: str, phase: str, reason: str, evidence: Mapping[str, Any], ts_ms: int
    ) -> None:
        with self._locked(), self._transaction() as db:
            self._row(db, version)
            db.execute(
                "INSERT INTO verdicts (version, evaluator, phase, reason, evidence, ts_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (version, evaluator, phase, reason, dumps(evidence), ts_ms),
            )

    def verdicts(self, version: str) -> list[dict[str, Any]]:
        with self._locked():
            self._row(self._conn, version)
            rows = self._conn.execute(
                "SELECT version, evaluator, phase, reason, evidence, ts_ms FROM verdicts"
                " WHERE version = ? ORDER BY rowid",
                (version,),
            )
            return [{**dict(row), "evidence": loads(row["evidence"])} for row in rows]

    def record_decision(self, decision: Decision) -> None:
        """Log the decision and apply it: see `_apply` for what each action changes."""
        if decision.action not in ACTIONS:
            msg = f"unknown decision {decision.action!r} on {decision.version}: use one of {ACTIONS}"
            raise RegistryError(msg)
        with self._locked(), self._transaction() as db:
            self._apply(db, decision)
            db.execute(
                "INSERT INTO decisions (\"group\", action, version, previous, reason, evidence, ts_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (decision.group, decision.action, decision.version, decision.previous, decision.reason,
                 dumps(decision.evidence), decision.ts_ms),
            )  # fmt: skip

    def decisions(self, group: str, *, skip: int = 0) -> list[Decision]:
        with self._locked():
            rows = self._conn.execute(
                'SELECT * FROM decisions WHERE "group" = ? ORDER BY seq LIMIT -1 OFFSET ?', (group, skip)
            )
            return [
                Decision(group=r["group"], action=r["action"], version=r["version"], reason=r["reason"],
                         ts_ms=r["ts_ms"], previous=r["previous"], evidence=loads(r["evidence"]))
                for r in rows
            ]  # fmt: skip

    def decision_count(self, group: str) -> int:
        with self._locked():
            row = self._conn.execute('SELECT COUNT(*) FROM decisions WHERE "group" = ?', (group,)).fetchone()
            return int(row[0])

    # -- commands (`daemon.registry.commands`) ------------------------------------------------------

    def record_command(self, record: CommandRecord) -> None:
        with self._locked(), self._transaction() as db:
            insert_command(db, record)

    def commands(self, group: str, *, skip: int = 0, limit: int = -1) -> list[CommandRecord]:
        """The group's commands in the order they were read (``limit`` -1: all)."""
        with self._locked():
            return select_commands(self._conn, '"group" = ?', (group,), skip=skip, limit=limit)

    def command(self, command_id: str) -> CommandRecord | None:
        """What became of command ``command_id`` the first time it was read; None if not read yet."""
        with self._locked():
            found = select_commands(self._conn, "id = ?", (command_id,), limit=1)
        return found[0] if found else None

    # -- checkpoints ------------------------------------------------------------------------------

    def save_checkpoint(self, version: str, learner: Learner) -> str:
        with self._locked():
            recorded = self._row(self._conn, version)["learner_class"]
        if learner_class_of(learner) != recorded:
            msg = (f"version {version} was created for {recorded}, not {learner_class_of(learner)}; "
                   f"save a learner of its own class, or create a new version")  # fmt: skip
            raise RegistryError(msg)
        sha256, relpath = self._checkpoints.save(learner)  # slow: outside the lock
        with self._locked(), self._transaction() as db:
            db.execute(
                "UPDATE versions SET checkpoint_sha256 = ?, checkpoint_path = ? WHERE id = ?",
                (sha256, relpath, version),
            )
        return sha256

    def load_checkpoint(self, version: str) -> Learner:
        with self._locked():
            row = self._row(self._conn, version)
        if row["checkpoint_sha256"] is None:
            msg = f"version {version} has no checkpoint yet; save one with save_checkpoint first"
            raise RegistryError(msg)
        try:
            return self._checkpoints.load(row["learner_class"], row["checkpoint_path"], row["checkpoint_sha256"])
        except RegistryError as exc:
            msg = f"version {version}: {exc}"
            raise RegistryError(msg) from exc

    # -- states of recovery snapshots --------------------------------------------------------------

    def store_state(self, learner: Learner) -> CheckpointRef:
        """Save a model's state in the same digest-checked store as the checkpoints (the same bytes
        are stored once), for a recovery snapshot to refer to instead of pickling the model."""
        sha256, relpath = self._checkpoints.save(learner)
        return CheckpointRef(learner_class_of(learner), sha256, relpath)

    def load_state(self, ref: CheckpointRef) -> Learner:
        return self._checkpoints.load(ref.learner_class, ref.path, ref.sha256)

    def discard_state(self, ref: CheckpointRef) -> None:
        with self._locked():
            used = self._conn.execute(
                "SELECT 1 FROM versions WHERE checkpoint_sha256 = ? LIMIT 1", (ref.sha256,)
            ).fetchone()
        if used is None:
            self._checkpoints.discard(ref.path)

    # -- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals: callers hold the lock ---------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self._closed:
                msg = f"the registry at {self.directory} is closed; open a new SqliteRegistry"
                raise RegistryError(msg)
            yield

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _apply(self, db: sqlite3.Connection, decision: Decision) -> None:
        """promote: ``version`` serves, ``previous`` goes on standby (a group's first champion is
        promoted with no previous). rollback: ``version`` serves again, ``previous`` (the champion
        rolled back from) is retired. refuse, retire: ``version`` is retired. lead: nothing changes
        (a vote's weights crossed, logged). A champion is only
        replaced by name: ``previous`` must be the group's champion; it is never refused or retired
        as it serves (the group would be left without one)."""
        target = self._row(db, decision.version)
        previous = None if decision.previous is None else self._row(db, decision.previous)
        for row in (target, previous):
            if row is not None and row["group"] != decision.group:
                msg = f"decision {decision.action} for group {decision.group!r} names {row['id']} of another group"
                raise RegistryError(msg)
        ts = decision.ts_ms
        if decision.action == "lead":  # a vote's weights crossed: who serves the champion's route is unchanged
            return
        if decision.action in ("refuse", "retire"):
            if target["status"] == "champion":
                msg = (f"cannot {decision.action} {target['id']}: it is the champion of {decision.group!r} "
                       "(a champion is replaced by a promotion or a rollback)")  # fmt: skip
                raise RegistryError(msg)
            db.execute("UPDATE versions SET status = 'retired', retired_ms = ? WHERE id = ?", (ts, target["id"]))
            return
        if target["status"] == "champion":
            msg = f"cannot {decision.action} {target['id']}: it is already the champion of {decision.group!r}"
            raise RegistryError(msg)
        self._refuse_second_champion(db, decision.group, target["id"], allowed=decision.previous)
        if previous is not None and decision.action == "promote":
            db.execute("UPDATE versions SET status = 'standby' WHERE id = ?", (previous["id"],))
        elif previous is not None:
            db.execute("UPDATE versions SET status = 'retired', retired_ms = ? WHERE id = ?", (ts, previous["id"]))
        db.execute(
            "UPDATE versions SET status = 'champion', promoted_ms = ?, retired_ms = NULL WHERE id = ?",
            (ts, target["id"]),
        )

    def _refuse_second_champion(self, db: sqlite3.Connection, group: str, new: str, allowed: str | None) -> None:
        """``new`` may become champion only if the group's champion is ``allowed`` (the one it replaces)."""
        row = db.execute("SELECT id FROM versions WHERE \"group\" = ? AND status = 'champion'", (group,)).fetchone()
        current = None if row is None else row["id"]
        if current != allowed:
            if current is None:
                msg = f"{new} cannot replace {allowed} as champion of {group!r}: {allowed} is not the champion"
            else:
                msg = (f"{new} cannot become champion of {group!r} while {current} is champion; a group has one "
                       f"champion: promote or roll back naming {current} as previous")  # fmt: skip
            raise RegistryError(msg)

    def _row(self, db: sqlite3.Connection, version_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = db.execute("SELECT * FROM versions WHERE id = ?", (version_id,)).fetchone()
        if row is None:
            raise UnknownVersionError(version_id, str(self.db_path))
        return row

    def _stored_ranges(self, version_id: str) -> list[OffsetRange]:
        cached = self._ranges.get(version_id)
        if cached is not None:
            return list(cached)
        rows = self._conn.execute(
            "SELECT topic, partition, first, last FROM ranges WHERE version = ? ORDER BY topic, partition, first",
            (version_id,),
        )
        found = [OffsetRange(*row) for row in rows]
        self._ranges[version_id] = found
        return list(found)

    @staticmethod
    def _info(row: sqlite3.Row, ranges: Sequence[OffsetRange]) -> VersionInfo:
        return VersionInfo(
            id=row["id"], group=row["group"], number=row["number"], name=row["name"], parent=row["parent"],
            framework=row["framework"], learner_class=row["learner_class"], config=loads(row["config"]),
            status=row["status"], created_ms=row["created_ms"], promoted_ms=row["promoted_ms"],
            retired_ms=row["retired_ms"], samples=row["samples"], checkpoint_sha256=row["checkpoint_sha256"],
            ranges=tuple(ranges),
        )  # fmt: skip
