"""The train step's hooks (`dataflows.train.step.TrainLogic`) with threaded lanes: a slow candidate
never holds serving back, a promoted version is credited only with what its checkpoint learned, the
hooks retain the group's state, and the end of the input waits for the lanes."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from bytewax.operators import StatefulLogic

from dataflows.ports import OffsetRange
from learners import build_learner
from tests.dataflows.helpers import (
    FEATURES,
    LOGREG,
    Gated,
    Stream,
    Wrapped,
    config,
    decisions,
    make_group,
    reports,
)

# -- threaded lanes --------------------------------------------------------------------------------


def test_a_slow_candidate_never_holds_serving_and_skips_what_it_cannot_keep_up_with(tmp_path: Path) -> None:
    """Threaded lanes: while the fork is stuck learning batch 1, batches keep being served and the
    champion keeps scoring; the fork skips its oldest waiting batch (reported with its lag), learns
    the rest once it is fast again, and its lineage shows the gap."""
    group = make_group(config(threaded=True, max_lag_batches=2), tmp_path)
    gate, entered = threading.Event(), threading.Event()
    fork = group.logic.lanes["fork"]
    fork.replace(fork.version, Gated(fork.learner, gate, entered), learns=True)
    stream = Stream(11)
    out: list[object] = []
    try:
        served, got = group.step(stream.batch(50))
        out += got
        assert entered.wait(10), "the fork never started learning batch 1"
        for _ in range(3):
            served, got = group.step(stream.batch(50))  # returns although the fork is stuck
            assert len(served.predictions) == 50
            out += got
        more, _ = group.logic.on_notify()  # threaded: a batch's results are collected after it
        out += list(more)
        (skipped,) = reports(out, "fork")
        assert (skipped.batch, skipped.n_labelled, skipped.n_learned) == (2, 0, 0)
        assert (skipped.lag_batches, skipped.skipped_batches_total) == (3, 1)
        assert skipped.error == "2 batches behind: skipped batch 2 (50 examples)"
        assert group.logic.notify_at() is not None  # work in flight: Bytewax is asked to look again
    finally:
        gate.set()
    for lane in group.logic.lanes.values():
        assert lane.wait_idle(timeout_s=10), f"lane {lane.name} still busy"
    late, _ = group.logic.on_notify()
    out += list(late)
    fork_reports = reports(out, "fork")
    assert sorted((r.batch, r.n_learned, r.lag_batches) for r in fork_reports[1:]) == [
        (1, 50, 0),
        (3, 50, 0),
        (4, 50, 0),
    ]
    assert sorted(r.batch for r in reports(out, "champion")) == [1, 2, 3, 4]
    lineage = group.deps.registry.version("default/2")
    assert lineage.ranges == (OffsetRange("events", 0, 0, 49), OffsetRange("events", 0, 100, 199))
    assert lineage.samples == 150
    group.logic.on_eof()


class Counting(Wrapped):
    """Counts the examples it learned (a frozen copy keeps the count it had)."""

    def __init__(self, inner: Wrapped | object) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self.learned = 0

    def learn(self, x: np.ndarray, y: np.ndarray) -> None:
        self.inner.learn(x, y)
        self.learned += len(y)


def test_a_version_promoted_from_threaded_lanes_is_credited_only_with_what_its_checkpoint_learned(
    tmp_path: Path,
) -> None:
    """The promoted version's lineage (samples and offsets in the registry) must describe the
    frozen model that serves and was saved, not batches the lane learned after the freeze. The
    lanes run on their threads; the test waits for them with a bound."""
    mismatches: list[str] = []
    for attempt in range(6):
        untrained = build_learner(LOGREG, n_features=2, n_classes=2, feature_names=FEATURES)
        group = make_group(config(threaded=True), tmp_path / str(attempt), champion=Counting(untrained))
        stream = Stream(attempt)
        for _ in range(40):
            _, out = group.step(stream.batch(50))
            if decisions(out):
                break
            for lane in group.logic.lanes.values():  # let this batch's results be collected next time
                assert lane.wait_idle(timeout_s=10)
        (decision,) = [d for d in decisions(out) if d.action == "promote"]
        for lane in group.logic.lanes.values():
            assert lane.wait_idle(timeout_s=10)
        group.logic.on_notify()
        serving = group.table.champion
        assert serving.version == decision.version
        info = group.deps.registry.version(decision.version)
        frozen_learned = serving.learner.learned  # type: ignore[attr-defined]
        if info.samples != frozen_learned or info.ranges != (OffsetRange("events", 0, 0, frozen_learned - 1),):
            mismatches.append(f"#{attempt}: registry {info.samples} samples {info.ranges}, checkpoint {frozen_learned}")
        group.logic.close()
    assert mismatches == []


def test_the_hooks_retain_the_groups_state(tmp_path: Path) -> None:
    group = make_group(config(), tmp_path)
    _, retain = group.logic.on_item(group.serve(Stream(1).batch(5)).batch)
    assert retain is StatefulLogic.RETAIN
    _, retain = group.logic.on_notify()
    assert retain is StatefulLogic.RETAIN
    _, retain = group.logic.on_eof()
    assert retain is StatefulLogic.RETAIN


def test_on_eof_waits_for_threaded_lanes_and_reports_their_work(tmp_path: Path) -> None:
    """At the end of the input every lane finishes (bounded wait) and every batch is reported once."""
    group = make_group(config(threaded=True, min_samples=1000), tmp_path)
    stream = Stream(12)
    out: list[object] = []
    for _ in range(5):
        out += group.step(stream.batch(40))[1]
    end, _ = group.logic.on_eof()
    out += list(end)
    assert all(lane.backlog == 0 for lane in group.logic.lanes.values())
    for model in ("champion", "fork"):
        assert sorted(r.batch for r in reports(out, model)) == [1, 2, 3, 4, 5]
    assert group.deps.registry.version("default/2").samples == 200
