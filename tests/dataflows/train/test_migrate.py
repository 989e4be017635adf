"""A recovery snapshot of format 1 (one model that served and learned at once) is carried forward:
the model that served before the upgrade goes on serving as a registered version, the label join
is kept, candidates are forked from it, and the decision is on the model-events topic."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from bytewax.testing import TestingSink, TestingSource

from daemon.wiring import local_deps
from dataflows import group as format1
from dataflows.config import FlowConfig, GateSpec, Topics
from dataflows.decode import FeatureSchema
from dataflows.flow import install_champion, resume_group_state
from dataflows.labels import LabelJoin, Pending
from dataflows.records import DecisionRecord, SourceRef
from dataflows.train import STATE_FORMAT, TrainContext, TrainLogic
from evaluators import PrequentialScore
from learners import LearnerSpec, build_learner

SCHEMA = FeatureSchema(["a", "b"], [0, 1])


def _config() -> FlowConfig:
    return FlowConfig("unused", Topics("ev", "pred", "dead", "me", "lab"), SCHEMA, LearnerSpec("river-logreg"),
                      gate=GateSpec(threaded=False))  # fmt: skip


def _format1_snapshot() -> bytes:
    """What the skeleton's Bytewax snapshot held: pickled under dataflows.group."""
    learner = build_learner(LearnerSpec("river-logreg"), n_features=2, n_classes=2, feature_names=["a", "b"])
    rng = np.random.default_rng(0)
    for _ in range(10):
        x = rng.normal(size=(100, 2))
        learner.learn(x, (x[:, 0] > 0).astype(np.int64))
    score = PrequentialScore(100)
    score.update([1, 0, 1], [1, 1, 1])
    slot = format1.ModelSlot("m1", learner, score, version=10, lineage={"ev/0": [0, 999], "lab/1": [5, 70]})
    join = LabelJoin(300, 1000)
    join.add_features("waiting", Pending([0.5, 0.5], {"m1": 1}, 1000.0, SourceRef("ev", 0, 1000)))
    state = format1.GroupState("default", "m1", {"m1": slot}, join, ["a", "b"], [0, 1], batches=12)
    return pickle.dumps(state)


def test_a_format1_snapshot_is_migrated_and_its_model_goes_on_serving(tmp_path: Path) -> None:
    config = _config()
    deps = local_deps(TestingSource([]), TestingSink([]), tmp_path, clock=lambda: 2000.0)
    install_champion(config, deps)  # a fresh registry: an untrained default/1 is put on the board
    ctx = TrainContext(config, deps.registry, deps.promoter, deps.metrics, deps.clock)
    old = pickle.loads(_format1_snapshot())
    probe = np.array([[1.0, 0.0], [-1.0, 0.0]])
    expected = old.models["m1"].learner.predict_proba(probe)

    state = resume_group_state(old, ctx)

    assert state.format == STATE_FORMAT
    serving = deps.promoter.serving("default")
    assert serving is not None
    version, learner = serving
    assert version == "default/2"
    np.testing.assert_array_equal(learner.predict_proba(probe), expected)  # the same model serves on
    info = deps.registry.version(version)
    assert info.config["migrated_from"] == "recovery state format 1"
    assert {(r.topic, r.partition, r.first, r.last) for r in info.ranges} == {("ev", 0, 0, 999), ("lab", 1, 5, 70)}
    assert deps.registry.version("default/1").status == "retired"  # the untrained placeholder
    assert state.join.pending_features == 1  # what waited for its label still waits
    assert state.slots["champion"].score.snapshot().n == 3
    fork = state.slots["fork"].lane
    assert deps.registry.version(fork.version).parent == version
    actions = [(d.action, d.version) for d in state.outbox]
    assert actions == [("promote", "default/2"), ("retire", "default/1")]
    assert all(isinstance(d, DecisionRecord) for d in state.outbox)
    # ... and the train step emits them with its first batch, then carries on.
    logic = TrainLogic(state, ctx)
    assert logic.lanes["champion"].version == version
    logic.close()


def test_a_snapshot_of_an_unknown_format_is_refused_naming_it(tmp_path: Path) -> None:
    config = _config()
    deps = local_deps(TestingSource([]), TestingSink([]), tmp_path)
    install_champion(config, deps)
    ctx = TrainContext(config, deps.registry, deps.promoter, deps.metrics, deps.clock)
    old = pickle.loads(_format1_snapshot())
    old.format = 99
    with pytest.raises(ValueError, match=r"snapshot format 99; this Headwater reads format 2 and migrates \[1\]"):
        resume_group_state(old, ctx)
