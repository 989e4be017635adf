"""The registry's command log: every command read, in order, found again by id and by group."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.registry import SqliteRegistry
from dataflows.records import CommandRecord, SourceRef


def _record(cid: str, outcome: str = "applied", offset: int = 0, group: str = "g") -> CommandRecord:
    return CommandRecord(
        group=group, id=cid, kind="pause", args={"model": "fork"}, actor="ops", reason="incident", outcome=outcome,
        detail="paused fork", issued_ts_ms=1, ts_ms=2, source=SourceRef("ctl", 0, offset),
    )  # fmt: skip


def test_commands_are_kept_in_order_and_the_first_record_of_an_id_is_its_outcome(tmp_path: Path) -> None:
    with SqliteRegistry(tmp_path) as reg:
        reg.record_command(_record("a", offset=0))
        reg.record_command(_record("b", "rejected", offset=1))
        reg.record_command(_record("a", "duplicate", offset=2))
        reg.record_command(_record("c", offset=3, group="other"))
        assert [(r.id, r.outcome) for r in reg.commands("g")] == [("a", "applied"), ("b", "rejected"),
                                                                  ("a", "duplicate")]  # fmt: skip
        assert [r.id for r in reg.commands("g", skip=1, limit=1)] == ["b"]
        first = reg.command("a")
        assert first is not None and first.outcome == "applied" and first.source == SourceRef("ctl", 0, 0)
        assert first.args == {"model": "fork"}
        assert reg.command("nope") is None


def test_a_version_1_registry_gains_the_command_log(tmp_path: Path) -> None:
    with SqliteRegistry(tmp_path) as reg:
        pass
    with sqlite3.connect(tmp_path / "registry.sqlite3") as db:  # as a registry written before commands existed
        db.execute("DROP TABLE commands")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with SqliteRegistry(tmp_path) as reg:
        reg.record_command(_record("a"))
        assert [r.id for r in reg.commands("g")] == ["a"]
    with sqlite3.connect(tmp_path / "registry.sqlite3") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
