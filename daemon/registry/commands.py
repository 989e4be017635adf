"""The registry's log of operators' commands (`dataflows.control`): every command the train step
read, with its outcome, in the order it was read. The log is what makes a command apply once: an
id applied before is a duplicate, and a restart re-applies what was applied after its snapshot
(`dataflows.train.commands.restore`)."""

from __future__ import annotations

import sqlite3
from typing import Any

from daemon.registry.codec import dumps, loads
from dataflows.records import CommandRecord, SourceRef

__all__ = ["insert_command", "select_commands"]


def insert_command(db: sqlite3.Connection, record: CommandRecord) -> None:
    src = record.source
    db.execute(
        'INSERT INTO commands (id, "group", kind, args, actor, reason, outcome, detail, issued_ts_ms, ts_ms, topic,'
        ' partition, "offset") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        (record.id, record.group, record.kind, dumps(record.args), record.actor, record.reason, record.outcome,
         record.detail, record.issued_ts_ms, record.ts_ms, src.topic if src else None, src.partition if src else None,
         src.offset if src else None),
    )  # fmt: skip


def select_commands(db: sqlite3.Connection, where: str, params: tuple[Any, ...], *, skip: int = 0,
                    limit: int = -1) -> list[CommandRecord]:  # fmt: skip
    # ``where`` is one of this module's callers' constant clauses; values travel as parameters.
    query = f"SELECT * FROM commands WHERE {where} ORDER BY seq LIMIT ? OFFSET ?"  # noqa: S608
    rows = db.execute(query, (*params, limit, skip))
    return [_record(r) for r in rows]


def _record(r: sqlite3.Row) -> CommandRecord:
    source = None if r["topic"] is None else SourceRef(r["topic"], r["partition"], r["offset"])
    return CommandRecord(
        group=r["group"], id=r["id"], kind=r["kind"], args=loads(r["args"]), actor=r["actor"], reason=r["reason"],
        outcome=r["outcome"], detail=r["detail"], issued_ts_ms=r["issued_ts_ms"], ts_ms=r["ts_ms"], source=source,
    )  # fmt: skip
