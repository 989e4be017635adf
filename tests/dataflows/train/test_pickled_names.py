"""Recovery snapshots name the classes they hold by module and name (pickle): those names are a
format. The train step's classes moved into packages (`dataflows.jobs`, `dataflows.lanes`,
`dataflows.train.*`), and the batching step's state into `dataflows.flow`; they are still pickled
under the names they had before, so that a snapshot taken before the move resumes after it, and one
taken after it resumes on the release before."""

from __future__ import annotations

import io
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from dataflows.config import CandidateSpec
from dataflows.flow import MicroBatchLogic, MicroBatchState
from dataflows.jobs import Job, LaneResult, LaneState, StoredLane
from dataflows.ports import CheckpointRef
from dataflows.train import GroupState, TrainLogic
from learners import LearnerSpec
from tests.dataflows.helpers import Memo, Stream, config, context, make_group

# What the release before the move wrote, class by class.
BEFORE = {
    ("dataflows.train", "GroupState"),
    ("dataflows.train", "Slot"),
    ("dataflows.gate", "Trial"),
    ("dataflows.gate", "PairingBuffer"),
    ("dataflows.lanes", "StoredLane"),
    ("dataflows.lanes", "LaneState"),
    ("dataflows.lanes", "Job"),
    ("dataflows.lanes", "LaneResult"),
}
MOVED = ("dataflows.jobs", "dataflows.lanes.", "dataflows.train.")  # module names no snapshot may hold


def _names(data: bytes) -> set[tuple[str, str]]:
    """Every (module, name) a pickle refers to, read back the way a resume reads it."""
    found: set[tuple[str, str]] = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            found.add((module, name))
            return super().find_class(module, name)

    Recording(io.BytesIO(data)).load()
    return found


def _ours(names: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(m, n) for m, n in names if m.startswith("dataflows")}


def test_a_snapshot_names_its_classes_as_the_release_before_the_move_did(tmp_path: Path) -> None:
    alt = CandidateSpec("alt", LearnerSpec("river-logreg", {"lr": 0.1}), gate="canary")
    group = make_group(config(candidates=(CandidateSpec("fork"), alt)), tmp_path)
    group.run(Stream(1), 3)
    names = _ours(_names(pickle.dumps(group.logic.take_snapshot())))
    group.logic.close()
    assert BEFORE - {("dataflows.lanes", "LaneState"), ("dataflows.lanes", "Job")} <= names
    assert not [m for m, _ in names if m.startswith(MOVED)]


def test_jobs_and_lane_states_are_pickled_under_dataflows_lanes() -> None:
    x, y = np.zeros((2, 2)), np.array([0, 1])
    job = Job(1, x, y, np.zeros(2, dtype=np.int8))
    result = LaneResult("fork", "default/2", 1, np.ones(2), np.ones(2), np.zeros(2, dtype=np.int8))
    stored = StoredLane("default/2", CheckpointRef("learners:Any", "0" * 64, "states/0"), True, [job], [result])
    lane = LaneState("default/2", Memo(), True, [job], [result])
    for value in (stored, lane):
        names = _ours(_names(pickle.dumps(value)))
        assert {
            ("dataflows.lanes", "Job"),
            ("dataflows.lanes", "LaneResult"),
            (type(value).__module__, type(value).__name__),
        } <= BEFORE & names
        assert not [m for m, _ in names if m.startswith(MOVED)]


def test_a_snapshot_pickled_under_the_old_names_resumes(tmp_path: Path) -> None:
    """The names resolve to today's classes: what `resume_group_state` checks with isinstance."""
    group = make_group(config(), tmp_path)
    group.run(Stream(2), 2)
    data = pickle.dumps(group.logic.take_snapshot())
    group.logic.close()
    restored = pickle.loads(data)
    assert isinstance(restored, GroupState)
    resumed = TrainLogic(restored, context(group.config, group.deps))
    assert {n: lane.version for n, lane in resumed.lanes.items()} == {"champion": "default/1", "fork": "default/2"}
    resumed.close()


# ``MicroBatchState(items=[1, 2], deadline=2026-01-01 00:00:00.020 UTC)``, as the release before the
# batching step joined `dataflows.flow` pickled it (commit 3d2e19f, `dataflows/batching.py`).
BATCHING_BEFORE = (
    b"\x80\x04\x95\xa3\x00\x00\x00\x00\x00\x00\x00\x8c\x12dataflows.batching\x94\x8c\x0fMicroB"
    b"atchState\x94\x93\x94)\x81\x94}\x94(\x8c\x05items\x94]\x94(K\x01K\x02e\x8c\x08dead"
    b"line\x94\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94C\n\x07\xea\x01\x01\x00\x00\x00\x00N"
    b" \x94h\x08\x8c\x08timezone\x94\x93\x94h\x08\x8c\ttimedelta\x94\x93\x94K\x00K\x00K\x00\x87"
    b"\x94R\x94\x85\x94R\x94\x86\x94R\x94ub."
)


def test_the_batching_steps_state_is_pickled_under_dataflows_batching() -> None:
    import dataflows.batching  # the old module, kept for the snapshots

    assert dataflows.batching.MicroBatchState is MicroBatchState
    assert dataflows.batching.MicroBatchLogic is MicroBatchLogic
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    wait = timedelta(milliseconds=20)
    logic: MicroBatchLogic[int] = MicroBatchLogic(None, max_size=10, max_wait=wait, now=lambda: t0)
    logic.on_batch([1, 2])
    data = pickle.dumps(logic.snapshot())
    assert _ours(_names(data)) == {("dataflows.batching", "MicroBatchState")}
    restored = pickle.loads(data)
    assert type(restored) is MicroBatchState
    assert (restored.items, restored.deadline) == ([1, 2], t0 + wait)


def test_a_batching_snapshot_of_the_release_before_the_move_resumes() -> None:
    state = pickle.loads(BATCHING_BEFORE)
    assert type(state) is MicroBatchState
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    resumed: MicroBatchLogic[int] = MicroBatchLogic(state, max_size=10, max_wait=timedelta(seconds=1), now=lambda: t0)
    assert resumed.notify_at() == t0 + timedelta(milliseconds=20)
    assert [list(batch) for batch in resumed.on_notify()[0]] == [[1, 2]]
