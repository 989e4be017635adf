"""Operators' commands applied by the train step (`dataflows.train.commands`): each acts on the
group as it runs, leaves a `CommandRecord` (and a registry row) with its outcome, applies once, and
comes back after a restart. Real learners, a SQLite registry, the board's promoter, inline lanes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataflows.config import CandidateSpec
from dataflows.control import Command, new_command
from dataflows.ports import OffsetRange
from dataflows.records import CommandRecord, SourceRef
from dataflows.train import TrainLogic, new_group_state
from dataflows.train.trials import CHAMPION_SLOT, STANDBY_SLOT
from learners import LearnerSpec
from tests.dataflows.helpers import (
    GROUP,
    Group,
    Stream,
    config,
    context,
    decisions,
    make_group,
    reports,
    trained_learner,
)
from tests.dataflows.train.support import run_until

ALT = CandidateSpec("alt", LearnerSpec("river-logreg", {"lr": 0.1}))
QUIET = {"min_samples": 5000, "max_samples": 5000, "probation_samples": 5000}  # no verdict on its own


class Operator:
    """Issues commands to a group as the control topic would deliver them: consecutive offsets."""

    def __init__(self, group: Group) -> None:
        self.group = group
        self.offset = 0

    def command(self, kind: str, args: dict[str, Any] | None = None, *, cid: str | None = None,
                age_s: float = 0.0, offset: int | None = None) -> Command:  # fmt: skip
        now_ms = int((self.group.clock() - age_s) * 1000)
        made = new_command(GROUP, kind, args, actor="alice", reason=f"test {kind}", ts_ms=now_ms, id=cid)
        at = self.offset if offset is None else offset
        self.offset = max(self.offset, at + 1)
        return Command(made.id, made.group, made.kind, made.args, made.actor, made.reason, made.ts_ms,
                       SourceRef("control", 0, at))  # fmt: skip

    def send(self, kind: str, args: dict[str, Any] | None = None, **how: Any) -> tuple[CommandRecord, list[object]]:
        got, _ = self.group.logic.on_item(self.command(kind, args, **how))
        out: list[object] = list(got)
        records = [r for r in out if isinstance(r, CommandRecord)]
        assert len(records) == 1, out
        return records[0], out


def _quiet(tmp_path: Path, **gate: Any) -> Group:
    return make_group(config(**(QUIET | gate)), tmp_path, champion=trained_learner())


def test_a_paused_candidate_learns_nothing_and_its_lineage_has_a_gap_over_the_stretch(tmp_path: Path) -> None:
    group, stream = _quiet(tmp_path), Stream(1)
    ops = Operator(group)
    group.run(stream, 2)  # offsets 0..99
    record, _ = ops.send("pause", {"model": "fork"})
    assert (record.outcome, record.detail) == ("applied", "learning paused for ['fork']; they still score")
    scored = group.run(stream, 2)  # offsets 100..199: scored, not learned
    assert [(r.n_labelled, r.n_learned) for r in reports(scored, "fork")] == [(50, 0), (50, 0)]
    ops.send("resume", {"model": "fork"})
    group.run(stream, 2)  # offsets 200..299
    fork = group.deps.registry.version(group.logic.lanes["fork"].version)
    assert fork.ranges == (OffsetRange("events", 0, 0, 99), OffsetRange("events", 0, 200, 299))
    assert fork.samples == 200
    assert group.deps.registry.command(record.id) == record


def test_a_command_applies_once_an_old_one_expires_and_a_replayed_offset_is_skipped(tmp_path: Path) -> None:
    group = _quiet(tmp_path)
    group.clock.t = 100_000.0
    ops = Operator(group)
    first, _ = ops.send("freeze", cid="c-1")
    again, _ = ops.send("unfreeze", cid="c-1")  # the same id, a new message: a duplicate, not applied
    assert (first.outcome, again.outcome) == ("applied", "duplicate")
    assert group.logic.state.decisions_frozen
    old, _ = ops.send("unfreeze", age_s=7200)
    assert old.outcome == "expired" and "more than 3600 s" in old.detail
    assert group.logic.state.decisions_frozen
    replayed, _ = group.logic.on_item(ops.command("unfreeze", offset=0))  # read again after a restart
    assert list(replayed) == [] and group.logic.state.decisions_frozen
    assert [(r.id, r.outcome) for r in group.deps.registry.commands(GROUP)][:2] == [("c-1", "applied"),
                                                                                    ("c-1", "duplicate")]  # fmt: skip


def test_a_frozen_group_reports_verdicts_and_decides_nothing_until_unfrozen(tmp_path: Path) -> None:
    """An alternative that learns against an untrained champion passes its trial: frozen, it is not
    promoted (its verdict is still published); unfrozen, it is."""
    group, stream = make_group(config(candidates=(ALT,)), tmp_path), Stream(1)
    ops = Operator(group)
    ops.send("freeze")
    out = group.run(stream, 30)
    assert any(getattr(v, "phase", None) == "passed" for v in out)
    assert decisions(out) == [] and group.table.champion.version == "default/1"
    ops.send("unfreeze")
    _, promote = run_until(group, stream, "promote", batches=5)
    assert promote.version == "default/2"


def test_promote_and_rollback_by_command_name_the_command_in_their_decisions(tmp_path: Path) -> None:
    group, stream = _quiet(tmp_path), Stream(1)
    ops = Operator(group)
    group.run(stream, 3)
    fork = group.logic.lanes["fork"].version
    record, out = ops.send("promote", {"model": "fork", "skip_golden": True})
    assert record.outcome == "applied" and record.detail == f"fork {fork} serves as champion in place of default/1"
    (promote,) = [d for d in decisions(out) if d.action == "promote"]
    assert promote.evidence["command"] == record.id and "promoted by operator alice" in promote.reason
    assert group.table.champion.version == fork and group.logic.lanes[STANDBY_SLOT].version == "default/1"
    served = group.serve(stream.batch(5, labelled=False))
    assert {p.version for p in served.predictions} == {fork}

    back, out = ops.send("rollback", {})
    assert back.outcome == "applied" and group.table.champion.version == "default/1"
    assert decisions(out)[0].action == "rollback" and STANDBY_SLOT not in group.logic.lanes
    # a version with a checkpoint can be promoted by id; one that never served cannot be rolled back to
    again, _ = ops.send("promote", {"version": fork})
    assert again.outcome == "applied" and group.table.champion.version == fork
    never = group.logic.lanes["fork"].version
    refused, _ = ops.send("rollback", {"version": never})
    assert refused.outcome == "rejected" and "never served" in refused.detail


def test_commands_that_do_not_fit_the_group_are_rejected_and_change_nothing(tmp_path: Path) -> None:
    group = _quiet(tmp_path)
    ops = Operator(group)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("promote", {"model": "nobody"}, "has no candidate 'nobody'"),
        ("promote", {"version": "default/99"}, "no version 'default/99'"),
        ("promote", {"version": "default/1"}, "is the champion already"),
        ("retire", {"model": CHAMPION_SLOT}, "is not a candidate"),
        ("rollback", {}, "has no standby"),
        ("resume", {"model": "fork"}, "is not paused"),
        ("add_candidate", {"candidate": {"name": "fork"}}, "has a model named 'fork' already"),
        ("add_candidate", {"candidate": {"name": "Bad Name"}}, "is not a candidate name"),
        ("add_candidate", {"candidate": {"name": "x", "learner": "no-such-learner"}}, "cannot build 'x'"),
    ]
    for kind, args, needle in cases:
        record, out = ops.send(kind, args)
        assert record.outcome == "rejected" and needle in record.detail, (kind, record.detail)
        assert out == [record]
    assert group.table.champion.version == "default/1" and set(group.logic.lanes) == {CHAMPION_SLOT, "fork"}


def test_an_added_candidate_learns_and_a_retired_one_is_gone(tmp_path: Path) -> None:
    group, stream = _quiet(tmp_path), Stream(1)
    ops = Operator(group)
    record, _ = ops.send("add_candidate", {"candidate": {"name": "alt"}})  # a fork of the champion
    assert record.outcome == "applied"
    alt = group.logic.lanes["alt"].version
    assert group.deps.registry.version(alt).parent == "default/1"
    group.run(stream, 2)
    assert group.deps.registry.version(alt).samples == 100
    retired, out = ops.send("retire", {"model": "alt"})
    assert retired.outcome == "applied" and "alt" not in group.logic.lanes
    assert [(d.action, d.version) for d in decisions(out)] == [("retire", alt)]
    assert group.deps.registry.version(alt).status == "retired"


def test_a_canary_ceiling_of_zero_takes_the_canary_route_off(tmp_path: Path) -> None:
    cfg = config(candidates=(CandidateSpec("fork", gate="canary"),), canary_steps=(0.1, 0.5), canary_min_samples=100)
    group, stream = make_group(cfg, tmp_path), Stream(1)
    group.run(stream, 2)
    assert group.table.canary is not None
    record, _ = Operator(group).send("set_canary_ceiling", {"share": 0.0})
    assert record.outcome == "applied" and group.table.canary is None
    group.run(stream, 5)
    served = group.serve(stream.batch(200, labelled=False))
    assert {p.route for p in served.predictions} == {"champion"}


def test_held_commands_come_back_after_a_restart_without_a_snapshot(tmp_path: Path) -> None:
    """The daemon restarts with no recovery state: the command log brings back what operators
    held — a paused candidate, frozen decisions, an added candidate — and the replayed messages
    are not applied again."""
    group = _quiet(tmp_path)
    ops = Operator(group)
    ops.send("add_candidate", {"candidate": {"name": "alt", "learner": "river-logreg"}})
    ops.send("pause", {"model": "alt"})
    ops.send("freeze")
    group.logic.close()

    ctx = context(group.config, group.deps)
    restarted = TrainLogic(new_group_state(ctx), ctx)
    assert set(restarted.lanes) == {CHAMPION_SLOT, "fork", "alt"}
    assert restarted.state.paused == {"alt"} and restarted.state.decisions_frozen
    assert restarted.state.control_offset == 2
    replay, _ = restarted.on_item(ops.command("unfreeze", offset=2))
    assert not [r for r in replay if isinstance(r, CommandRecord)] and restarted.state.decisions_frozen
    restarted.close()
