"""Live refresh from a process lane: serving asks the fork's process, which answers with the model
it is teaching; after a promotion it serves as the fork's continuation; when the process dies the
champion serves every event."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dataflows.lanes import ProcessLane
from dataflows.lanes.ask import LiveModel
from dataflows.records import Event
from tests.dataflows.helpers import Group, Stream
from tests.dataflows.train.support import live_group

# -- live refresh from a process lane: serving asks the fork's process ---------------------------


def _run_until(group: Group, stream: Stream, lane: ProcessLane, done: Callable[[], bool], what: str) -> None:
    """Run batches, each learned by the fork's process, until ``done`` (at most 20)."""
    for _ in range(20):
        group.run(stream, 1)
        assert lane.wait_idle(timeout_s=60), "the fork's process did not learn its batch in 60 s"
        if done():
            return
    pytest.fail(f"{what} within 20 batches")


def _serving_from_process(group: Group, stream: Stream) -> ProcessLane:
    """Run batches until the fork's process serves (its trial must first show it not worse)."""
    lane = group.logic.lanes["fork"]
    assert isinstance(lane, ProcessLane) and lane.serves

    def serving() -> bool:
        return isinstance(getattr(group.table.fresh, "learner", None), LiveModel)

    _run_until(group, stream, lane, serving, "the fork's process was never set to serve")
    return lane


def test_a_process_lane_serves_the_model_it_is_teaching_without_handing_it_over(tmp_path: Path) -> None:
    group = live_group(tmp_path, threaded=True, processes=True, refresh_samples=5000)
    stream = Stream(31)
    try:
        lane = _serving_from_process(group, stream)
        fresh = group.table.fresh
        assert fresh is not None and fresh.version == lane.version != group.table.champion.version
        probe = Stream(81).batch(30, labelled=False)
        out = group.serve(probe)
        assert {(p.version, p.route) for p in out.predictions} == {(lane.version, "live")}
        assert not out.dead_letters and not out.errors
        # What served is the process's model as it is now: the same probabilities as a copy of it.
        x = np.asarray([e.x for e in probe if isinstance(e, Event)])
        np.testing.assert_allclose([p.proba for p in out.predictions], lane.frozen().predict_proba(x))
        group.run(stream, 1)
        assert lane.wait_idle(timeout_s=60)
        assert group.table.fresh is fresh  # nothing handed over after a batch: the same process answers
        np.testing.assert_allclose(fresh.learner.predict_proba(x), lane.frozen().predict_proba(x))
    finally:
        group.logic.close()


def test_after_a_promotion_a_process_lane_serves_as_the_forks_continuation(tmp_path: Path) -> None:
    group = live_group(tmp_path, threaded=True, processes=True, refresh_samples=200)
    stream = Stream(32)
    try:
        lane = _serving_from_process(group, stream)
        first = lane.version
        _run_until(group, stream, lane, lambda: group.table.champion.version == first, f"{first} was not promoted")

        def continuation_serves() -> bool:  # once its own trial shows it not worse
            fresh = group.table.fresh
            return fresh is not None and fresh.version == lane.version != first

        _run_until(group, stream, lane, continuation_serves, "the promoted fork's continuation never served")
        out = group.serve(Stream(82).batch(20, labelled=False))
        assert {(p.version, p.route) for p in out.predictions} == {(lane.version, "live")}
    finally:
        group.logic.close()


def test_when_the_forks_process_dies_the_champion_serves_every_event(tmp_path: Path) -> None:
    group = live_group(tmp_path, threaded=True, processes=True, refresh_samples=5000)
    stream = Stream(33)
    try:
        lane = _serving_from_process(group, stream)
        process = lane._process
        assert process is not None
        process.kill()
        process.join(timeout=30)
        out = group.serve(Stream(83).batch(25, labelled=False))
        assert len(out.predictions) == 25 and not out.dead_letters  # no event lost
        assert {(p.version, p.route) for p in out.predictions} == {(group.table.champion.version, "champion")}
        assert [(route, version) for route, version, _ in out.errors] == [("live", lane.version)]
        # The next train step takes the dead process off the board: no error on every batch after.
        group.run(stream, 1)
        assert group.table.fresh is None
        out = group.serve(Stream(84).batch(25, labelled=False))
        assert len(out.predictions) == 25 and not out.errors
        assert {p.route for p in out.predictions} == {"champion"}
    finally:
        group.logic.close()
