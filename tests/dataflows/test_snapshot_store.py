"""Recovery snapshots refer to models stored in the registry's checkpoint store (digest-checked,
safetensors for PyTorch) instead of pickling them; a resume loads them back, and stored states that
no kept snapshot refers to any more are deleted."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from dataflows.lanes import StoredLane
from dataflows.train import KEEP_SNAPSHOTS, TrainLogic
from learners import LearnerSpec, TorchMLP
from tests.dataflows.helpers import Stream, config, context, make_group

PROBE = np.array([[1.0, 0.5], [-1.0, 0.2], [0.3, -2.0]])


@pytest.mark.parametrize("learner", [LearnerSpec("river-logreg"), LearnerSpec("torch-mlp", {"device": "cpu"})])
def test_a_snapshot_stores_each_model_and_a_resume_loads_it_back(tmp_path: Path, learner: LearnerSpec) -> None:
    group = make_group(config(learner=learner), tmp_path)
    group.run(Stream(3), 4, size=60)
    snapshot = group.logic.take_snapshot()
    blob = pickle.dumps(snapshot)
    for name, slot in snapshot.slots.items():
        assert isinstance(slot.lane, StoredLane), name
        path = group.deps.registry.directory / "checkpoints" / slot.lane.checkpoint.path  # type: ignore[attr-defined]
        assert path.is_file()
        if learner.name == "torch-mlp":
            assert path.suffix == ".safetensors"  # no pickled tensors in the recovery store
    assert b"_rebuild_tensor" not in blob  # no tensor is pickled into Bytewax's store

    fork_now = group.logic.lanes["fork"].learner.predict_proba(PROBE)
    resumed = TrainLogic(pickle.loads(blob), context(group.config, group.deps))
    np.testing.assert_array_equal(resumed.lanes["fork"].learner.predict_proba(PROBE), fork_now)
    assert resumed.lanes["fork"].version == group.logic.lanes["fork"].version
    if learner.name == "torch-mlp":
        assert isinstance(resumed.lanes["fork"].learner, TorchMLP)
    resumed.close()
    group.logic.close()


def test_a_tampered_stored_state_is_refused_on_resume(tmp_path: Path) -> None:
    group = make_group(config(), tmp_path)
    group.run(Stream(4), 2)
    snapshot = group.logic.take_snapshot()
    lane = snapshot.slots["fork"].lane
    assert isinstance(lane, StoredLane)
    path = group.deps.registry.directory / "checkpoints" / lane.checkpoint.path  # type: ignore[attr-defined]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(Exception, match="digest"):
        TrainLogic(snapshot, context(group.config, group.deps))


def test_states_no_kept_snapshot_needs_are_deleted(tmp_path: Path) -> None:
    group = make_group(config(), tmp_path)
    stream = Stream(5)
    refs = []
    for _ in range(KEEP_SNAPSHOTS + 2):
        group.run(stream, 1, size=60)  # the fork learns: a new state each time
        lane = group.logic.take_snapshot().slots["fork"].lane
        assert isinstance(lane, StoredLane)
        refs.append(lane.checkpoint)
    store = group.deps.registry.directory / "checkpoints"  # type: ignore[attr-defined]
    assert len({r.sha256 for r in refs}) == len(refs)
    kept = refs[-KEEP_SNAPSHOTS:]
    assert all((store / r.path).is_file() for r in kept)
    assert not any((store / r.path).exists() for r in refs[:-KEEP_SNAPSHOTS])
    # The champion's state is its version's checkpoint as well: never deleted.
    champion = group.logic.take_snapshot().slots["champion"].lane
    assert isinstance(champion, StoredLane)
    assert (store / champion.checkpoint.path).is_file()
    group.logic.close()
