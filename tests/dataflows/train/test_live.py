"""Live refresh (`dataflows.train.live`): a refresh fork's latest state serves the champion's route
between its promotions, while its trial shows it not worse than the champion it continues. Real
learners, a SQLite registry, the board's promoter, inline lanes."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest

from dataflows.config import GoldenSet
from dataflows.lanes.live import Guarded
from dataflows.lanes.thread import REPLAY_AFTER_COPIES
from learners.base import FloatArray
from tests.dataflows.helpers import (
    GROUP,
    Group,
    Stream,
    Wrapped,
    concept_b,
    concept_poisoned,
    config,
    decisions,
    make_group,
    reports,
    trained_learner,
)
from tests.dataflows.train.support import REFRESH, fork_lane, live_group, served_versions


def test_without_live_refresh_the_frozen_champion_serves_between_promotions(tmp_path: Path) -> None:
    group = live_group(tmp_path, live_refresh=False)
    stream = Stream(5)
    group.run(stream, 4)
    assert group.table.fresh is None
    assert served_versions(group, stream) == {f"{GROUP}/1"}


def test_the_forks_state_serves_while_its_trial_shows_it_not_worse(tmp_path: Path) -> None:
    group = live_group(tmp_path)
    stream = Stream(5)
    fork = fork_lane(group)
    out = group.run(stream, 1)  # the fork's first batch: scored, learned, and its copy serves
    fresh = group.table.fresh
    assert fresh is not None
    assert fresh.version == fork.version != group.table.champion.version == f"{GROUP}/1"
    assert fresh.learner is not fork.learner  # a copy: nothing teaches what serves
    assert served_versions(group, stream) == {fork.version}
    probe = Stream(77).arrays(30)[0]
    before = fresh.learner.predict_proba(probe).copy()
    out += group.run(stream, 1)
    assert group.table.fresh is not fresh  # the next batch's state replaced it...
    np.testing.assert_array_equal(fresh.learner.predict_proba(probe), before)  # ...and the old copy never changed
    assert decisions(out) == []  # all of it before any promotion


def test_after_a_promotion_the_forks_continuation_serves_what_it_learns_next(tmp_path: Path) -> None:
    group = live_group(tmp_path, refresh_samples=200)
    stream = Stream(6)
    for _ in range(12):
        out = group.run(stream, 1)
        if [d for d in decisions(out) if d.action == "promote"]:
            break
    else:
        pytest.fail("the refresh fork was not promoted within 12 batches")
    champion = group.table.champion.version
    assert champion != f"{GROUP}/1"
    assert group.table.fresh is None  # the promoted state serves as the champion itself...
    group.run(stream, 1)
    fresh = group.table.fresh  # ...until its continuation has learned a batch
    assert fresh is not None
    assert fresh.version == fork_lane(group).version != champion


def test_a_fork_that_falls_behind_stops_serving_at_once(tmp_path: Path) -> None:
    group = live_group(tmp_path)
    stream = Stream(7)
    group.run(stream, 2)
    assert group.table.fresh is not None
    fork = fork_lane(group)
    # It now gets a quarter of the plane wrong: below the champion by more than the margin on the
    # trial's examples so far, though not yet significantly (the trial has not failed).
    fork.replace(fork.version, trained_learner(concept=concept_poisoned), learns=True)
    out = group.run(stream, 1)
    assert decisions(out) == []
    assert group.table.fresh is None
    assert served_versions(group, stream) == {f"{GROUP}/1"}
    for _ in range(10):
        out = group.run(stream, 1)
        assert group.table.fresh is None
        if [d for d in decisions(out) if d.action == "refuse"]:
            break
    else:
        pytest.fail("the poisoned fork was not refused within 10 batches")


def _refuse_poisoned(group: Group, stream: Stream) -> str:
    """Teach the live fork a poisoned concept until it is refused; return the refused version."""
    group.run(stream, 2)
    fork = fork_lane(group)
    fork.replace(fork.version, trained_learner(concept=concept_poisoned), learns=True)
    refused = fork.version
    for _ in range(10):
        if [d for d in decisions(group.run(stream, 1)) if d.action == "refuse"]:
            return refused
    pytest.fail("the poisoned fork was not refused within 10 batches")


def test_a_refused_live_fork_learns_on_as_a_new_version(tmp_path: Path) -> None:
    """A live fork is the learner itself: refused on live evidence, it stops serving but is not
    started again from the frozen champion. Its model goes on learning as a new version whose
    parent is the refused one, as the same learner alone would go on."""
    group = live_group(tmp_path)
    stream = Stream(7)
    refused = _refuse_poisoned(group, stream)
    fork = fork_lane(group)
    learner = fork.learner
    info = group.deps.registry.version(fork.version)
    assert info.parent == refused != fork.version
    assert "fork_of" not in info.config
    assert group.table.fresh is None  # evidence was against it: the champion serves
    probe = Stream(78).arrays(40)[0]
    champion = group.table.champion.learner.predict_proba(probe)
    assert not np.array_equal(learner.predict_proba(probe), champion)  # not a copy of the champion
    group.run(stream, 1)
    assert fork.learner is learner  # the same model, learning on


def test_a_refused_live_fork_serves_during_its_wait_once_its_own_evidence_allows(tmp_path: Path) -> None:
    """After a refusal the fork is not judged before its wait is over; meanwhile it serves again
    once its new trial has enough examples (30) that do not hold it back. Before, the frozen
    champion served through the whole wait."""
    group = live_group(tmp_path, retry_after=2000)
    stream = Stream(7)
    _refuse_poisoned(group, stream)
    assert group.table.fresh is None  # no evidence of its own yet: the champion serves
    fork = fork_lane(group)
    fork.replace(fork.version, trained_learner(), learns=True)  # as if it had learned its way back
    slot = group.logic.state.slots["fork"]
    served: list[str | None] = []
    for _ in range(4):
        out = group.run(stream, 1)
        assert decisions(out) == []  # not judged during its wait
        served.append(None if group.table.fresh is None else group.table.fresh.version)
    assert slot.trial is not None and slot.trial.wait > 0
    assert served[-1] == fork.version
    n = slot.trial.evaluator.verdict().evidence["n"]
    assert isinstance(n, int) and n >= 150  # its evidence counts from the refusal on


def test_a_refused_live_fork_that_stays_worse_does_not_serve_during_its_wait(tmp_path: Path) -> None:
    group = live_group(tmp_path, retry_after=2000)
    stream = Stream(7)
    _refuse_poisoned(group, stream)
    for _ in range(6):
        assert decisions(group.run(stream, 1)) == []
        assert group.table.fresh is None


def test_a_refused_live_forks_wait_ends_in_a_verdict_on_all_it_gathered_since(tmp_path: Path) -> None:
    """Its trial is judged as soon as the wait is over, on the evidence of the wait too: with a wait
    of 200 examples and 400 needed for a refresh, the fork is promoted about 400 examples after the
    refusal (8 batches of 50), not 600."""
    group = live_group(tmp_path, retry_after=200)
    stream = Stream(13)
    _refuse_poisoned(group, stream)
    fork = fork_lane(group)
    fork.replace(fork.version, trained_learner(), learns=True)
    for _ in range(10):
        if [d for d in decisions(group.run(stream, 1)) if d.action == "promote"]:
            break
    else:
        pytest.fail("the fork was not promoted within 10 batches of the refusal")


def test_a_live_fork_that_fails_the_golden_set_starts_again_from_the_champion(tmp_path: Path) -> None:
    """The golden set is about what the fork learned (poisoned labels, forgetting): a fork that
    passed its refresh trial on poisoned live labels but not the golden set does not learn on."""
    x, y = Stream(123).arrays(500)
    settings: dict[str, Any] = {"refresh_samples": 400, "refresh_margin": 0.05, "live_refresh": True}
    cfg = config(candidates=REFRESH, golden=GoldenSet(x, y), live_refresh_budget=1.0, **settings)
    group = make_group(cfg, tmp_path, champion=trained_learner())
    stream = Stream(1, concept_poisoned)
    for _ in range(40):
        refused = [d for d in decisions(group.run(stream, 1)) if d.action == "refuse"]
        if refused:
            break
    else:
        pytest.fail("the poisoned fork was not refused within 40 batches")
    assert "not the golden set" in refused[0].reason
    fork = fork_lane(group)
    info = group.deps.registry.version(fork.version)
    assert info.parent == info.config["fork_of"] == group.table.champion.version
    probe = Stream(78).arrays(40)[0]
    np.testing.assert_array_equal(fork.learner.predict_proba(probe), group.table.champion.learner.predict_proba(probe))


class Uncopyable(Wrapped):
    def clone(self, *, include_state: bool = False) -> Self:
        msg = "this learner cannot be copied"
        raise RuntimeError(msg)


def test_a_fork_that_cannot_be_copied_never_serves_and_its_lane_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    group = live_group(tmp_path)
    stream = Stream(8)
    fork = fork_lane(group)
    fork.replace(fork.version, Uncopyable(trained_learner()), learns=True)
    with caplog.at_level(logging.WARNING, logger="headwater"):
        out = group.run(stream, 5)
    assert group.table.fresh is None
    assert fork.live is None  # not armed again
    assert "live refresh stops" in caplog.text and "cannot be copied" in caplog.text
    assert sum(r.n_learned for r in reports(out, "fork")) == 250  # the lane learned every batch


class SlowToCopy(Wrapped):
    """Copies take 30 ms; learning a batch of 50 events takes well under a millisecond."""

    def clone(self, *, include_state: bool = False) -> Self:
        time.sleep(0.03)
        return super().clone(include_state=include_state)


def test_a_model_slow_to_copy_is_handed_over_by_replicas_that_catch_up(tmp_path: Path) -> None:
    group = live_group(tmp_path, refresh_samples=5000)  # no promotion meanwhile
    stream = Stream(9)
    fork = fork_lane(group)
    fork.replace(fork.version, SlowToCopy(trained_learner()), learns=True)
    probe = Stream(78).arrays(40)[0]
    seen: list[object] = []
    for _ in range(REPLAY_AFTER_COPIES + 4):
        group.run(stream, 1)
        fresh = group.table.fresh
        assert fresh is not None and fresh.version == fork.version
        # What serves is the lane's model as of the batch it just learned, exactly.
        np.testing.assert_array_equal(fresh.learner.predict_proba(probe), fork.learner.predict_proba(probe))
        seen.append(fresh.learner)
    assert not isinstance(seen[0], Guarded)  # copies first, measured...
    assert isinstance(seen[-1], Guarded)  # ...then replay: copies were slower than learning two batches
    assert seen[-1] is seen[-3] and seen[-2] is seen[-4] and seen[-1] is not seen[-2]  # two replicas take turns


class OnceSlowToCopy(Wrapped):
    """Its second copy takes 80 ms (a pause); every other one well under a millisecond."""

    copies = 0

    def clone(self, *, include_state: bool = False) -> Self:
        OnceSlowToCopy.copies += 1
        if OnceSlowToCopy.copies == 2:
            time.sleep(0.08)
        return super().clone(include_state=include_state)


def test_one_slow_copy_does_not_switch_a_model_cheap_to_copy_to_replay(tmp_path: Path) -> None:
    group = live_group(tmp_path, refresh_samples=5000)
    stream = Stream(9)
    fork = fork_lane(group)
    OnceSlowToCopy.copies = 0
    fork.replace(fork.version, OnceSlowToCopy(trained_learner()), learns=True)
    for _ in range(REPLAY_AFTER_COPIES + 4):
        group.run(stream, 1)
        fresh = group.table.fresh
        assert fresh is not None and not isinstance(fresh.learner, Guarded)  # copies, never replicas
    assert OnceSlowToCopy.copies >= REPLAY_AFTER_COPIES + 4


def test_a_refused_forks_state_stops_serving_in_the_step_that_refuses_it(tmp_path: Path) -> None:
    """With no wait after a refusal (`retry_after` 0) the new fork may serve at once: the refused
    one's state is taken off in the same step, before the new fork has handed over anything."""
    group = live_group(tmp_path, retry_after=0)
    stream = Stream(11)
    group.run(stream, 2)
    fork = fork_lane(group)
    refused_version = fork.version
    assert group.table.fresh is not None and group.table.fresh.version == refused_version
    fork.replace(fork.version, trained_learner(concept=concept_b), learns=True)  # clearly worse: refused
    for _ in range(10):
        out = group.run(stream, 1)
        if [d for d in decisions(out) if d.action == "refuse"]:
            break
    else:
        pytest.fail("the inverted fork was not refused within 10 batches")
    fresh = group.table.fresh
    assert fresh is None or fresh.version != refused_version
    group.run(stream, 1)
    assert served_versions(group, stream) != {refused_version}


# -- the train step waits for the live fork (threaded lanes) ---------------------------------------


class SlowToLearn(Wrapped):
    """Learning a batch takes ``seconds``."""

    def __init__(self, inner: Any, seconds: float) -> None:
        super().__init__(inner)
        self.seconds = seconds

    def learn(self, x: FloatArray, y: Any) -> None:
        time.sleep(self.seconds)
        super().learn(x, y)

    def clone(self, *, include_state: bool = False) -> Self:
        return type(self)(self.inner.clone(include_state=include_state), self.seconds)


def test_the_next_batch_is_served_by_a_state_that_learned_every_label_before_it(tmp_path: Path) -> None:
    # Threaded lanes: without the wait, the train step would return while the fork still learns.
    group = live_group(tmp_path, threaded=True, refresh_samples=5000, live_refresh_wait_ms=10_000)
    stream = Stream(10)
    fork = fork_lane(group)
    fork.replace(fork.version, SlowToLearn(trained_learner(), 0.05), learns=True)
    probe = Stream(79).arrays(40)[0]
    try:
        for _ in range(4):
            group.run(stream, 1)
            fresh = group.table.fresh
            assert fresh is not None and fresh.version == fork.version
            assert fork.backlog == 0  # the step returned once the lane had learned its batch...
            # ...and handed serving that state: what serves predicts as the lane's model does now.
            np.testing.assert_array_equal(fresh.learner.predict_proba(probe), fork.learner.predict_proba(probe))
    finally:
        group.logic.close()


def test_a_slow_fork_holds_a_batch_back_by_the_bound_at_most(tmp_path: Path) -> None:
    group = live_group(tmp_path, threaded=True, refresh_samples=5000, live_refresh_wait_ms=20)
    stream = Stream(11)
    fork = fork_lane(group)
    fork.replace(fork.version, SlowToLearn(trained_learner(), 1.0), learns=True)
    try:
        started = time.monotonic()
        group.run(stream, 1)
        took = time.monotonic() - started
        assert took < 0.8  # the fork needs a second for this batch: the step did not wait for it
        assert fork.backlog == 1
        assert group.table.fresh is None  # nothing it learned serves yet: the champion does
        assert fork.wait_idle(timeout_s=30)
        assert group.table.fresh is not None  # once it has learned the batch, its state serves
    finally:
        group.logic.close()


def test_under_refresh_promotions_the_standby_is_a_recent_version_not_the_first(tmp_path: Path) -> None:
    """A refresh promotion comes every `refresh_samples`; a probation of `probation_samples` (longer)
    would never end, and the standby would stay the version before the first promotion, older with
    every refresh: a rollback would restore it. Its probation lasts `refresh_samples` at most."""
    cfg = config(candidates=REFRESH, refresh_samples=200, probation_samples=1000, refresh_margin=0.05)
    group = make_group(cfg, tmp_path, champion=trained_learner())
    out = group.run(Stream(12), 40)
    promoted = [d.version for d in decisions(out) if d.action == "promote"]
    assert len(promoted) >= 6
    standby = group.logic.lanes["standby"].version
    assert standby != f"{GROUP}/1"
    assert standby in promoted[-3:]  # one of the last few champions
    retired = {d.version for d in decisions(out) if d.action == "retire"}
    assert f"{GROUP}/1" in retired
    group.logic.close()
