"""The registry's SQLite schema, and opening a database: create it on first use, refuse a newer one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.registry.errors import RegistryError

__all__ = ["SCHEMA_VERSION", "STATUSES", "connect"]

SCHEMA_VERSION = 2  # 2: commands (a version-1 file gains the table when opened)
STATUSES = ("candidate", "champion", "standby", "retired")

_TABLES = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    id TEXT PRIMARY KEY,
    "group" TEXT NOT NULL,
    number INTEGER NOT NULL CHECK (number >= 1),
    name TEXT NOT NULL,
    parent TEXT REFERENCES versions(id),
    framework TEXT NOT NULL,
    learner_class TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN {STATUSES!r}),
    created_ms INTEGER NOT NULL,
    promoted_ms INTEGER,
    retired_ms INTEGER,
    samples INTEGER NOT NULL DEFAULT 0,
    checkpoint_sha256 TEXT,
    checkpoint_path TEXT,
    UNIQUE ("group", number)
);
-- At most one champion per group, whatever writes to the file.
CREATE UNIQUE INDEX IF NOT EXISTS one_champion_per_group ON versions ("group") WHERE status = 'champion';
CREATE TABLE IF NOT EXISTS ranges (
    version TEXT NOT NULL REFERENCES versions(id),
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (version, topic, partition, first)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS verdicts (
    version TEXT NOT NULL REFERENCES versions(id),
    evaluator TEXT NOT NULL,
    phase TEXT NOT NULL,
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS verdicts_by_version ON verdicts (version);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    "group" TEXT NOT NULL,
    action TEXT NOT NULL,
    version TEXT NOT NULL REFERENCES versions(id),
    previous TEXT REFERENCES versions(id),
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_by_group ON decisions ("group", seq);
CREATE TABLE IF NOT EXISTS commands (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    "group" TEXT NOT NULL,
    kind TEXT NOT NULL,
    args TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('applied', 'rejected', 'duplicate', 'expired')),
    detail TEXT NOT NULL,
    issued_ts_ms INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    topic TEXT,
    partition INTEGER,
    "offset" INTEGER
);
CREATE INDEX IF NOT EXISTS commands_by_group ON commands ("group", seq);
CREATE INDEX IF NOT EXISTS commands_by_id ON commands (id, seq);
"""


def connect(db_path: Path) -> sqlite3.Connection:
    """Open (creating on first use) the registry database; refuse one written by a newer Headwater.

    The connection is in autocommit mode: the store opens its own ``BEGIN IMMEDIATE`` transactions.
    It may be used from any thread, one at a time (the store holds a lock around every use).
    """
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        _check_or_create(conn, db_path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        msg = f"{db_path} cannot be opened as a registry database ({exc}); move it aside or pick another directory"
        raise RegistryError(msg) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _check_or_create(conn: sqlite3.Connection, db_path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() if has_meta else None
        found = int(row[0]) if row else None
        if found is not None and found > SCHEMA_VERSION:
            msg = (f"registry database {db_path} has schema version {found}, newer than the {SCHEMA_VERSION} this "
                   f"Headwater understands; upgrade Headwater, or point it at another registry directory")  # fmt: skip
            raise RegistryError(msg)
        if found is None or found < SCHEMA_VERSION:  # every statement is IF NOT EXISTS: an older file gains the rest
            for statement in _TABLES.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))  # fmt: skip
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
