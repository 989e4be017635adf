"""Pieces several of the train step's test modules share: running a group until the promoter acts,
and a group with a refresh fork under live refresh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataflows.config import CandidateSpec
from dataflows.lanes import ThreadLane
from dataflows.records import DecisionRecord
from tests.dataflows.helpers import Group, Stream, config, decisions, make_group, trained_learner

__all__ = ["REFRESH", "fork_lane", "live_group", "number", "run_until", "served_versions"]

REFRESH = (CandidateSpec("fork", gate="refresh"),)


def number(value: object) -> float:
    assert isinstance(value, int | float), value
    return float(value)


def run_until(group: Group, stream: Stream, action: str, batches: int = 40) -> tuple[list[object], DecisionRecord]:
    """Run batch after batch until the promoter takes ``action``; fail if it does not within ``batches``."""
    out: list[object] = []
    for _ in range(batches):
        got = group.run(stream, 1)
        out.extend(got)
        taken = [d for d in decisions(got) if d.action == action]
        if taken:
            return out, taken[0]
    msg = f"no {action} within {batches} batches; decisions: {[(d.action, d.version) for d in decisions(out)]}"
    raise AssertionError(msg)


def live_group(tmp_path: Path, **gate: Any) -> Group:
    """A trained champion and a refresh fork; live refresh copies after every batch (budget 1)."""
    settings = {"refresh_samples": 400, "refresh_margin": 0.05, "live_refresh": True, "live_refresh_budget": 1.0}
    return make_group(config(candidates=REFRESH, **(settings | gate)), tmp_path, champion=trained_learner())


def fork_lane(group: Group) -> ThreadLane:
    lane = group.logic.lanes["fork"]
    assert isinstance(lane, ThreadLane)
    return lane


def served_versions(group: Group, stream: Stream) -> set[str]:
    return {p.version for p in group.serve(stream.batch(20, labelled=False)).predictions}
