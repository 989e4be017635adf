"""`promotion.restart_on_drift`: after a drop in the champion's accuracy, an untrained model of the
champion's configuration learns from the change on, and replaces the champion once significantly
better; otherwise it is dropped. Real learners, a SQLite registry, the board's promoter, inline lanes."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from dataflows.config import CandidateSpec
from dataflows.records import DecisionRecord
from dataflows.train import TrainLogic
from tests.dataflows.helpers import (
    GROUP,
    Group,
    Stream,
    concept_b,
    config,
    context,
    decisions,
    make_group,
    trained_learner,
    verdicts,
)

RESTART = "restart"


def restart_group(tmp_path: Path, *, restart_on_drift: bool = True, max_samples: int = 1000) -> Group:
    """A champion that learned concept A; no other candidate, so that only the restart can win."""
    cfg = config(candidates=(), restart_on_drift=restart_on_drift, max_samples=max_samples)
    return make_group(cfg, tmp_path, champion=trained_learner())


def noise(x: np.ndarray) -> np.ndarray:
    """Labels that no model can learn: a coin per event (seeded)."""
    return np.random.default_rng(len(x) * 7 + int(1000 * abs(x[0, 0]))).integers(0, 2, len(x))


def accuracy_on(group: Group, concept: object, seed: int) -> float:
    x, y = Stream(seed, concept).arrays(500)  # type: ignore[arg-type]
    p = group.table.champion.learner.predict_proba(x)
    return float((p.argmax(axis=1) == y).mean())


def restart_versions(group: Group) -> list[str]:
    return [v.id for v in group.deps.registry.versions(GROUP) if v.config.get("gate") == "restart"]


def test_after_a_drop_an_untrained_model_learns_the_change_and_replaces_the_champion(tmp_path: Path) -> None:
    group = restart_group(tmp_path)
    group.run(Stream(40), 10, size=100)
    assert RESTART not in group.logic.state.slots  # no change yet: nothing restarts
    out: list[object] = []
    stream = Stream(41, concept_b)
    for _ in range(30):
        out += group.run(stream, 1, size=100)
        if [d for d in decisions(out) if d.action == "promote"]:
            break
    (drift,) = [v for v in verdicts(out) if v.evaluator == "drift"]
    assert float(drift.evidence["after"]) < float(drift.evidence["before"])  # type: ignore[arg-type]
    (started,) = restart_versions(group)
    info = group.deps.registry.version(started)
    assert info.config["restart_after"] == f"{GROUP}/1" and info.parent is None  # untrained, not a fork
    (promote,) = [d for d in decisions(out) if d.action == "promote"]
    assert promote.version == started and promote.previous == f"{GROUP}/1"
    assert "passed its restart trial" in promote.reason and "interval 0." in promote.reason  # lower bound > 0
    assert accuracy_on(group, concept_b, 42) > 0.9  # what serves now learned the new concept
    assert RESTART not in group.logic.state.slots  # its state is the champion: its lane is gone
    assert group.logic.lanes["standby"].version == f"{GROUP}/1"  # the old champion, kept for a rollback
    retired = [d for d in decisions(out) if d.action == "retire" and "champion now" in d.reason]
    assert len(retired) == 1  # the successor its lane would have learned on as
    group.logic.close()


def test_without_the_setting_nothing_restarts(tmp_path: Path) -> None:
    group = restart_group(tmp_path, restart_on_drift=False)
    group.run(Stream(42), 10, size=100)
    out = group.run(Stream(43, concept_b), 10, size=100)
    assert [v for v in verdicts(out) if v.evaluator == "drift"]
    assert RESTART not in group.logic.state.slots
    assert restart_versions(group) == []
    group.logic.close()


def test_a_restart_that_never_beats_the_champion_is_dropped(tmp_path: Path) -> None:
    """Labels turned to noise: the champion drops to a coin toss, and so does a model that learns
    the noise. It never wins; after `max_samples` examples it is retired and the champion stays."""
    group = restart_group(tmp_path)
    group.run(Stream(44), 10, size=100)
    out = group.run(Stream(45, noise), 25, size=100)
    (started,) = restart_versions(group)
    assert RESTART not in group.logic.state.slots
    (retired,) = [d for d in decisions(out) if d.action == "retire" and d.version == started]
    assert "better than the champion" in retired.reason
    assert [d for d in decisions(out) if d.action == "promote"] == []
    assert group.table.champion.version == f"{GROUP}/1"
    group.logic.close()


def test_a_newer_drop_starts_a_new_restart_in_place_of_the_last(tmp_path: Path) -> None:
    group = restart_group(tmp_path, max_samples=100_000)
    group.run(Stream(46), 10, size=100)
    group.run(Stream(47, noise), 6, size=100)  # the champion falls from ~1 to ~0.5: the first restart
    (first,) = restart_versions(group)
    assert group.logic.lanes[RESTART].version == first
    out = group.run(Stream(48, concept_b), 6, size=100)  # ... and to ~0: another
    second = [v for v in restart_versions(group) if v != first]
    assert len(second) == 1
    (retired,) = [d for d in decisions(out) if isinstance(d, DecisionRecord) and d.version == first]
    assert retired.action == "retire" and "newer change" in retired.reason
    group.logic.close()


def test_a_restart_survives_a_snapshot_and_resumes_where_it_was(tmp_path: Path) -> None:
    group = restart_group(tmp_path, max_samples=100_000)
    group.run(Stream(49), 10, size=100)
    group.run(Stream(50, noise), 6, size=100)  # it cannot win: it is still learning at the snapshot
    lane = group.logic.lanes[RESTART]
    probe = Stream(51).arrays(50)[0]
    before = lane.learner.predict_proba(probe)
    scored = group.logic.state.slots[RESTART].score.snapshot().n
    assert scored > 0
    blob = pickle.dumps(group.logic.take_snapshot())
    group.logic.close()
    resumed = TrainLogic(pickle.loads(blob), context(group.config, group.deps))
    again = resumed.lanes[RESTART]
    assert again.version == lane.version
    np.testing.assert_array_equal(again.learner.predict_proba(probe), before)
    assert resumed.state.slots[RESTART].score.snapshot().n == scored  # what counts towards max_samples
    assert resumed.state.slots[RESTART].spec == CandidateSpec(RESTART, learner=group.config.learner, gate="shadow")
    resumed.close()


def test_the_restart_name_is_reserved() -> None:
    import pytest

    from daemon.config import Settings

    with pytest.raises(ValueError, match="reserved"):
        Settings.model_validate({"model": {"candidates": [{"name": "restart"}]}})


def test_a_refresh_evaluator_pickled_before_early_existed_resumes_with_early_passes() -> None:
    from evaluators import Paired, Phase, RefreshEvaluator

    old = RefreshEvaluator(min_samples=1000)
    del old.__dict__["early"]  # what unpickling a snapshot written before the setting existed gives
    resumed = pickle.loads(pickle.dumps(old))
    resumed.update(Paired(candidate=np.ones(200), champion=np.zeros(200)))
    assert resumed.verdict().phase is Phase.PASSED  # significantly better: passes early, as it did


def test_live_refresh_trials_never_pass_early(tmp_path: Path) -> None:
    from evaluators import RefreshEvaluator

    cfg = config(candidates=(CandidateSpec("fork", gate="refresh"),), live_refresh=True)
    group = make_group(cfg, tmp_path, champion=trained_learner())
    trial = group.logic.state.slots["fork"].trial
    assert trial is not None and isinstance(trial.evaluator, RefreshEvaluator) and not trial.evaluator.early
    group.logic.close()
    cfg = config(candidates=(CandidateSpec("fork", gate="refresh"),))
    group = make_group(cfg, tmp_path / "plain", champion=trained_learner())
    trial = group.logic.state.slots["fork"].trial
    assert trial is not None and isinstance(trial.evaluator, RefreshEvaluator) and trial.evaluator.early
    group.logic.close()


def test_a_restart_promoted_after_the_snapshot_is_not_resumed(tmp_path: Path) -> None:
    group = restart_group(tmp_path)
    group.run(Stream(52), 10, size=100)
    stream = Stream(53, concept_b)
    out: list[object] = []
    snapshot = None
    for _ in range(30):
        out += group.run(stream, 1, size=100)
        if snapshot is None and RESTART in group.logic.state.slots:
            snapshot = pickle.dumps(group.logic.take_snapshot())  # the restart is learning
        if [d for d in decisions(out) if d.action == "promote"]:
            break
    assert snapshot is not None and RESTART not in group.logic.state.slots  # it won after the snapshot
    group.logic.close()
    resumed = TrainLogic(pickle.loads(snapshot), context(group.config, group.deps))
    assert RESTART not in resumed.state.slots and RESTART not in resumed.lanes
    resumed.close()


def test_a_flow_config_refuses_a_candidate_named_restart() -> None:
    import pytest

    with pytest.raises(ValueError, match="reserved"):
        config(candidates=(CandidateSpec(RESTART),))


def test_a_restart_that_forgets_the_golden_set_is_refused_and_dropped(tmp_path: Path) -> None:
    """A golden set says what must not be forgotten: a model that learned only what came after the
    change wins its trial against the champion but regresses on it, and is refused (not kept)."""
    from dataflows.config import GoldenSet

    x, y = Stream(54).arrays(500)
    cfg = config(candidates=(), restart_on_drift=True, max_samples=1000, golden=GoldenSet(x, y))
    group = make_group(cfg, tmp_path, champion=trained_learner())
    group.run(Stream(55), 10, size=100)
    out = group.run(Stream(56, concept_b), 15, size=100)
    (started, *_) = restart_versions(group)
    (refused,) = [d for d in decisions(out) if d.action == "refuse"]
    assert refused.version == started and "golden set" in refused.reason
    assert [d for d in decisions(out) if d.action == "promote"] == []
    assert group.table.champion.version == f"{GROUP}/1"
    # The successor it was frozen into is retired with it, and no lane is left learning.
    assert any(d.action == "retire" and f"{started} was refused" in d.reason for d in decisions(out))
    assert all(v.status != "candidate" for v in group.deps.registry.versions(GROUP) if v.id != started)
    group.logic.close()
