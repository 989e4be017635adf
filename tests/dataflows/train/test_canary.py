"""The canary (`dataflows.train.canary`): a canary candidate serves its share of keys through its
steps with a snapshot of its own, and every prediction names the checkpoint that made it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataflows.config import CandidateSpec
from dataflows.train import TrainOutput
from tests.dataflows.helpers import (
    Group,
    Stream,
    config,
    decisions,
    make_group,
)


def _canary_group(tmp_path: Path) -> Group:
    """A fork on a canary trial of two steps, 10% then 50% of keys, 100 canary examples each."""
    cfg = config(candidates=(CandidateSpec("fork", gate="canary"),), canary_steps=(0.1, 0.5), canary_min_samples=100)
    return make_group(cfg, tmp_path)


def test_a_canary_serves_its_share_and_is_promoted_through_its_steps(tmp_path: Path) -> None:
    """A fork on a canary trial serves a sticky share of keys, raised step by step while it holds
    up. What serves is a snapshot of the fork, a version of its own (parent: the fork's version),
    re-taken at each step, the previous one retired. Promoted at the last step; then the next
    version goes on canary at the first step."""
    group = _canary_group(tmp_path)
    registry = group.deps.registry
    stream = Stream(1)
    group.step(stream.batch(100))
    first = group.table.canary
    assert first is not None and group.table.canary_share == 0.1
    info = registry.version(first.version)
    assert (info.parent, info.config["canary_snapshot_of"], info.checkpoint_sha256 is not None) == (
        "default/2", "default/2", True,
    )  # fmt: skip
    snapshots: list[tuple[str, float]] = []
    counts: list[int] = []
    out: list[TrainOutput] = []
    for _ in range(30):
        served, out = group.step(stream.batch(100))
        group.clock.t += 1
        canary = [p for p in served.predictions if p.route == "canary"]
        counts.append(len(canary))
        for p in canary:
            assert registry.version(p.version).config["canary_snapshot_of"] == "default/2"
        if any(d.action == "promote" for d in decisions(out)):
            break
        table = group.table
        if table.canary is not None and (not snapshots or snapshots[-1][0] != table.canary.version):
            snapshots.append((table.canary.version, table.canary_share))
    else:
        raise AssertionError(f"the canary was never promoted; snapshots {snapshots}")
    assert [share for _, share in snapshots] == [0.1, 0.5]
    assert snapshots[0][0] == first.version
    assert 3 <= counts[0] <= 20  # about 10 of 100 keys
    assert registry.version(first.version).status == "retired"  # replaced at the second step
    (promote,) = [d for d in decisions(out) if d.action == "promote"]
    assert (promote.version, promote.previous) == ("default/2", "default/1")
    assert promote.reason.startswith("fork default/2 passed its canary trial")
    table = group.table
    assert table.champion.version == "default/2"
    assert table.canary is not None and table.canary_share == 0.1
    assert registry.version(table.canary.version).config["canary_snapshot_of"] == group.logic.lanes["fork"].version
    assert registry.version(snapshots[-1][0]).status == "retired"


def test_every_prediction_was_made_by_the_checkpoint_of_the_version_it_names(tmp_path: Path) -> None:
    """A prediction names the version that made it, and the registry keeps that version's bytes:
    loading the checkpoint of every version that served, champion or canary, reproduces exactly
    what was served under its name, across a canary's steps and its promotion."""
    group = _canary_group(tmp_path)
    stream = Stream(1)
    served_by: dict[str, list[tuple[list[float], list[float]]]] = {}
    promoted_at: int | None = None
    for k in range(30):
        served, out = group.step(stream.batch(100))
        for p, e in zip(served.predictions, served.batch.events, strict=True):
            served_by.setdefault(p.version, []).append((e.x, p.proba))
        if promoted_at is None and any(d.action == "promote" for d in decisions(out)):
            promoted_at = k
        if promoted_at is not None and k >= promoted_at + 2:
            break
    assert promoted_at is not None
    assert len(served_by) >= 4  # the first champion, two canary snapshots, the new champion, its canary
    registry = group.deps.registry
    for version, rows in served_by.items():
        model = registry.load_checkpoint(version)
        x = np.array([r[0] for r in rows])
        np.testing.assert_array_equal(
            model.predict_proba(x), np.array([r[1] for r in rows]), err_msg=f"{version}: served by another model"
        )
