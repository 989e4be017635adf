"""ProcessLane: a candidate's model in a process of its own, with the guarantees of a threaded lane:
scored before learned, in order; a frozen copy and a stored state at one instant between jobs;
what it learns after a freeze credited to the successor; skipping when behind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dataflows.jobs import Job, LaneState
from dataflows.lanes import ProcessLane, child
from dataflows.lanes.ask import LiveModel
from dataflows.lanes.live import LiveRefresh
from dataflows.ports import CheckpointRef, OffsetRange
from dataflows.serve import Unavailable
from learners import Learner, LearnerSpec, build_learner
from learners.base import FloatArray, IntArray
from tests.dataflows.helpers import Wrapped


def _job(seq: int, n: int = 100, seed: int | None = None) -> Job:
    rng = np.random.default_rng(seq if seed is None else seed)
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] > 0).astype(np.int64)
    return Job(seq, x, y, np.zeros(n, dtype=np.int8), (OffsetRange("events", 0, 100 * seq, 100 * seq + n - 1),))


def _learner() -> Learner:
    return build_learner(LearnerSpec("river-logreg"), n_features=2, n_classes=2, feature_names=["a", "b"])


@pytest.fixture
def lane() -> Iterator[ProcessLane]:
    one = ProcessLane("fork", LaneState("default/2", _learner(), True), max_backlog=100)
    yield one
    one.close()


def test_it_scores_before_learning_in_order_and_learns_like_a_model_in_this_process(lane: ProcessLane) -> None:
    here = _learner()
    for seq in range(1, 9):
        lane.submit(_job(seq))
    assert lane.wait_idle(timeout_s=60), "the lane's process did not finish 8 jobs in 60 s"
    results = lane.drain()
    assert [r.seq for r in results] == list(range(1, 9))
    for seq, result in zip(range(1, 9), results, strict=True):
        job = _job(seq)
        expected = (here.predict_proba(job.x).argmax(axis=1) == job.y).astype(np.float64)
        np.testing.assert_array_equal(result.correct, expected)  # scored before learning, as here
        here.learn(job.x, job.y)
        assert (result.learned, result.version, result.ranges) == (100, "default/2", job.ranges)
    probe = _job(0, seed=77).x
    np.testing.assert_allclose(lane.frozen().predict_proba(probe), here.predict_proba(probe))


def test_freeze_as_hands_later_learning_to_the_successor(lane: ProcessLane) -> None:
    lane.submit(_job(1))
    frozen = lane.freeze_as("default/3")  # between two jobs: after job 1, or before it if not yet started
    lane.submit(_job(2))
    assert lane.wait_idle(timeout_s=60)
    results = [(r.seq, r.version) for r in lane.drain()]
    assert results in ([(1, "default/2"), (2, "default/3")], [(1, "default/3"), (2, "default/3")])
    copy = _learner()
    for seq, version in results:
        if version == "default/2":
            copy.learn(_job(seq).x, _job(seq).y)
    probe = _job(0, seed=5).x
    np.testing.assert_allclose(frozen.predict_proba(probe), copy.predict_proba(probe))  # what default/2 learned


def test_before_its_process_runs_the_lane_holds_the_model_handed_in_and_queues_the_jobs() -> None:
    with child._SERVER_LOCK:  # the lane's process cannot start while the server is held
        one = ProcessLane("fork", LaneState("default/2", _learner(), True), max_backlog=100)
        one.submit(_job(1))
        stored = one.snapshot()
        assert [j.seq for j in stored.jobs] == [1] and stored.results == []
        probe = _job(0, seed=3).x
        np.testing.assert_allclose(stored.learner.predict_proba(probe), _learner().predict_proba(probe))
    try:
        assert one.wait_idle(timeout_s=60), "the queued job never reached the process"
        assert [r.seq for r in one.drain()] == [1]
    finally:
        one.close()


def test_a_stored_state_holds_the_model_with_the_queued_jobs_and_results_of_one_instant(lane: ProcessLane) -> None:
    saved: list[Learner] = []

    def save(learner: Learner) -> CheckpointRef:
        saved.append(learner)
        return CheckpointRef("x:Y", "0" * 64, "0/x")

    for seq in range(1, 7):
        lane.submit(_job(seq))
    stored = lane.store(save)
    done = {r.seq for r in stored.results}
    queued = {j.seq for j in stored.jobs}
    assert done | queued == set(range(1, 7)) and not done & queued
    replay = _learner()
    for seq in sorted(done):
        replay.learn(_job(seq).x, _job(seq).y)
    probe = _job(0, seed=9).x
    np.testing.assert_allclose(saved[0].predict_proba(probe), replay.predict_proba(probe))
    assert lane.wait_idle(timeout_s=60)


def test_it_skips_its_oldest_jobs_when_too_far_behind() -> None:
    one = ProcessLane("fork", LaneState("default/2", _learner(), True), max_backlog=2)
    try:
        with one._cond:  # hold the dispatcher: nothing reaches the child while jobs pile up
            one._holding += 1
        for seq in range(1, 6):
            one.submit(_job(seq))
        skipped = one.drain()
        assert [(r.seq, r.skipped) for r in skipped] == [(1, True), (2, True), (3, True)]
        assert one.skipped_total == 3
        with one._cond:
            one._holding -= 1
            one._dispatch()
        assert one.wait_idle(timeout_s=60)
        assert [r.seq for r in one.drain()] == [4, 5]
    finally:
        one.close()


def test_after_close_the_lane_still_holds_what_it_learned() -> None:
    """The train step closes its lanes when the input ends; Bytewax snapshots the step after that."""
    one = ProcessLane("fork", LaneState("default/2", _learner(), True), max_backlog=100)
    one.submit(_job(1))
    assert one.wait_idle(timeout_s=60)
    one.close()
    stored = one.snapshot()
    here = _learner()
    here.learn(_job(1).x, _job(1).y)
    probe = _job(0, seed=11).x
    np.testing.assert_allclose(stored.learner.predict_proba(probe), here.predict_proba(probe))
    assert [r.seq for r in stored.results] == [1]
    one.close()  # twice: nothing to do


def test_a_moa_model_learns_in_a_jvm_of_its_own_and_comes_back() -> None:
    """The lane's process starts its own JVM (a JVM does not survive a fork, so the lane server
    never starts one); the MOA model travels both ways as Java serialisation and learns there as
    it would here, event for event."""
    spec = LearnerSpec("moa-arf", {"ensemble_size": 3}, seed=5)
    model = build_learner(spec, n_features=2, n_classes=2, feature_names=["a", "b"])
    here = model.clone(include_state=True)
    lane = ProcessLane("fork", LaneState("default/2", model, True), max_backlog=100)
    try:
        for seq in range(1, 7):
            lane.submit(_job(seq))
        assert lane.wait_idle(timeout_s=90), "the lane's process did not finish 6 jobs in 90 s"
        results = lane.drain()
        for seq, result in zip(range(1, 7), results, strict=True):
            job = _job(seq)
            expected = (here.predict_proba(job.x).argmax(axis=1) == job.y).astype(np.float64)
            np.testing.assert_array_equal(result.correct, expected)
            here.learn(job.x, job.y)
        probe = _job(0, seed=77).x
        np.testing.assert_array_equal(lane.frozen().predict_proba(probe), here.predict_proba(probe))
    finally:
        lane.close()
    np.testing.assert_array_equal(lane.frozen().predict_proba(probe), here.predict_proba(probe))


# -- live refresh: the lane's process serves -------------------------------------------------------


class _Board:
    """What `LiveRefresh.publish` reaches (`Promoter.serve_fresh`): the last model published."""

    def __init__(self) -> None:
        self.fresh: tuple[str, Learner] | None = None

    def serve_fresh(self, group: str, *, champion: str, version: str | None, learner: Learner | None) -> bool:
        self.fresh = None if version is None or learner is None else (version, learner)
        return True


def _serving_lane(board: _Board, *, answer_s: float = 30.0, model: Learner | None = None) -> ProcessLane:
    model = _learner() if model is None else model
    one = ProcessLane("fork", LaneState("default/2", model, True), max_backlog=100, serves=True, answer_s=answer_s)
    one.set_live(LiveRefresh(board, "default", "default/1", "default/2"))  # type: ignore[arg-type]
    return one


def _published(board: _Board, lane: ProcessLane) -> Learner:
    deadline = time.monotonic() + 60
    while board.fresh is None:  # published once the lane's process runs
        assert time.monotonic() < deadline, "the serving lane was never published"
        time.sleep(0.01)
    version, model = board.fresh
    assert version == "default/2"
    return model


def test_a_serving_lane_answers_with_the_model_that_learns_as_it_is_now() -> None:
    board = _Board()
    lane = _serving_lane(board)
    here = _learner()
    probe = _job(0, seed=21).x
    try:
        live = _published(board, lane)
        assert isinstance(live, LiveModel)
        np.testing.assert_allclose(live.predict_proba(probe), here.predict_proba(probe))
        for seq in (1, 2, 3):
            lane.submit(_job(seq))
            assert lane.wait_idle(timeout_s=60)
            here.learn(_job(seq).x, _job(seq).y)
            # No copy and no handover: the next question sees what the process has just learned.
            np.testing.assert_allclose(live.predict_proba(probe), here.predict_proba(probe))
    finally:
        lane.close()


def test_a_serving_lane_refuses_a_version_it_no_longer_serves() -> None:
    board = _Board()
    lane = _serving_lane(board)
    probe = _job(0, seed=22).x
    try:
        live = _published(board, lane)
        lane.rename("default/3")  # promoted: the process now learns for the successor...
        lane.set_live(LiveRefresh(board, "default", "default/2", "default/3"))  # type: ignore[arg-type]
        with pytest.raises(Unavailable, match="does not serve default/2"):
            live.predict_proba(probe)  # ...so what was published for default/2 no longer answers
        assert board.fresh is not None and board.fresh[0] == "default/3"
        board.fresh[1].predict_proba(probe)
        lane.set_live(None)
        with pytest.raises(Unavailable, match="does not serve"):
            board.fresh[1].predict_proba(probe)  # taken off: nothing published before answers
    finally:
        lane.close()


def test_the_lanes_process_itself_refuses_a_version_it_no_longer_holds() -> None:
    board = _Board()
    lane = _serving_lane(board)
    probe = _job(0, seed=24).x
    try:
        live = _published(board, lane)
        # Renamed, and serving not yet told: the parent still asks for default/2. Once the process
        # has the rename (a job sent after it is done), it says no itself.
        lane.rename("default/3")
        lane.submit(_job(1))
        assert lane.wait_idle(timeout_s=60)
        with pytest.raises(Unavailable, match="holds default/3, not default/2"):
            live.predict_proba(probe)
    finally:
        lane.close()


class _SlowToLearn(Wrapped):
    """Learning a job takes ``seconds``, and first leaves ``marker`` behind (in the lane's process)."""

    def __init__(self, inner: Learner, marker: Path, seconds: float) -> None:
        super().__init__(inner)
        self.marker, self.seconds = marker, seconds

    def learn(self, x: FloatArray, y: IntArray) -> None:
        self.marker.touch()
        time.sleep(self.seconds)
        super().learn(x, y)


def test_a_busy_serving_lane_is_given_up_after_its_bound_and_answers_again_after(tmp_path: Path) -> None:
    board, marker = _Board(), tmp_path / "learning"
    model = _SlowToLearn(_learner(), marker, seconds=1.0)
    lane = _serving_lane(board, answer_s=0.05, model=model)
    probe = _job(0, seed=23).x
    try:
        live = _published(board, lane)
        lane.submit(_job(1))
        deadline = time.monotonic() + 60
        while not marker.exists():  # the process is in the middle of learning the job
            assert time.monotonic() < deadline, "the job never started learning"
            time.sleep(0.005)
        started = time.monotonic()
        with pytest.raises(Unavailable, match="did not answer within 50 ms"):
            live.predict_proba(probe)
        assert time.monotonic() - started < 0.5
        # The answer is still owed (the process is in the middle of a piece of learning): the
        # next question is given up at once, however long it may wait, not once the old answer comes.
        started = time.monotonic()
        with pytest.raises(Unavailable, match="still owes the answer"):
            lane.ask("default/2", probe, timeout_s=30.0)
        assert time.monotonic() - started < 0.5
        assert lane.wait_idle(timeout_s=60)
        here = _learner()
        here.learn(_job(1).x, _job(1).y)
        # The answer to the question given up is skipped: this one gets its own, after the job.
        np.testing.assert_allclose(live.predict_proba(probe), here.predict_proba(probe))
    finally:
        lane.close()


def _learning(lane: ProcessLane, job: Job, marker: Path) -> None:
    lane.submit(job)
    deadline = time.monotonic() + 60
    while not marker.exists():  # the process is in the middle of learning the job's first piece
        assert time.monotonic() < deadline, "the job never started learning"
        time.sleep(0.005)


def test_a_serving_lane_answers_between_the_pieces_of_a_job(tmp_path: Path) -> None:
    board, marker = _Board(), tmp_path / "learning"
    # A job of 100 examples is learned in 4 pieces of at most 32, each taking a second here.
    model = _SlowToLearn(_learner(), marker, seconds=1.0)
    lane = _serving_lane(board, answer_s=30.0, model=model)
    probe, job = _job(0, seed=25).x, _job(1)
    try:
        live = _published(board, lane)
        _learning(lane, job, marker)
        started = time.monotonic()
        answer = live.predict_proba(probe)
        assert time.monotonic() - started < 2.0  # after the first piece, not after the whole job (4 s)
        assert lane.backlog == 1  # the job is still being learned
        here = _learner()
        here.learn(job.x[:32], job.y[:32])
        np.testing.assert_allclose(answer, here.predict_proba(probe))  # the model as of the first piece
        assert lane.wait_idle(timeout_s=60)
    finally:
        lane.close()


def test_a_large_question_never_holds_serving_past_its_bound(tmp_path: Path) -> None:
    board, marker = _Board(), tmp_path / "learning"
    model = _SlowToLearn(_learner(), marker, seconds=1.0)
    lane = _serving_lane(board, answer_s=0.05, model=model)
    large = np.random.default_rng(26).normal(size=(50_000, 2))  # 800 kB: more than a pipe's buffer
    try:
        live = _published(board, lane)
        _learning(lane, _job(1), marker)
        started = time.monotonic()
        with pytest.raises(Unavailable, match="did not answer within 50 ms"):
            live.predict_proba(large)  # the process reads it only after its piece of learning
        assert time.monotonic() - started < 0.5
        assert lane.wait_idle(timeout_s=60)
        deadline = time.monotonic() + 60
        while True:  # answered once its large answer, still owed, has come back
            try:
                assert live.predict_proba(large[:10]).shape == (10, 2)
                break
            except Unavailable:
                assert time.monotonic() < deadline, "the lane never answered again"
                time.sleep(0.01)
    finally:
        lane.close()
