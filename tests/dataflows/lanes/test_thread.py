"""Lanes: each model scores a job before learning it, on its own thread or inline, never further
behind than its backlog allows, and can be snapshotted and rebuilt without losing or redoing work."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dataflows.jobs import Job, LaneResult, LaneState
from dataflows.lanes import ThreadLane
from dataflows.ports import OffsetRange
from learners import Learner
from tests.dataflows.helpers import LOGREG, Broken, Gated, Memo, trained_learner, wait_for

PROBE = np.array([[2.0, 0.5], [-2.0, 0.5], [0.1, -1.0]])


def job(seq: int, n: int = 3, y: int = 1, *, repeat_of: int | None = None) -> Job:
    """``n`` examples whose features name the job (``repeat_of``: the same rows as that job)."""
    rows = float(seq if repeat_of is None else repeat_of)
    x = np.array([[rows, float(i)] for i in range(n)])
    ranges = (OffsetRange("events", 0, 10 * seq, 10 * seq + n - 1),)
    return Job(seq, x, np.full(n, y, dtype=np.int64), np.zeros(n, dtype=np.int8), ranges)


def lane(learner: Learner, *, learns: bool = True, threaded: bool = False, max_backlog: int = 8) -> ThreadLane:
    return ThreadLane("fork", LaneState("default/2", learner, learns), max_backlog=max_backlog, threaded=threaded)


def idle(*lanes: ThreadLane) -> None:
    for one in lanes:
        assert one.wait_idle(timeout_s=10), f"lane {one.name} still busy after 10 s"


@pytest.mark.parametrize("threaded", [False, True])
def test_a_lane_scores_each_example_before_learning_it(threaded: bool) -> None:
    """Prequential: a model that memorises is wrong on what it sees for the first time (it had not
    learned it yet) and right when the same examples come again."""
    memo = Memo()
    one = lane(memo, threaded=threaded)
    one.submit(job(1))
    one.submit(job(2, repeat_of=1))
    idle(one)
    first, second = one.drain()

    assert (first.seq, first.version, first.lane) == (1, "default/2", "fork")
    assert first.correct.tolist() == [0.0, 0.0, 0.0]  # uniform: argmax is class 0, the label is 1
    assert first.proba_true.tolist() == [0.5, 0.5, 0.5]
    assert (first.learned, first.error, first.skipped) == (3, None, False)
    assert first.ranges == (OffsetRange("events", 0, 10, 12),)
    assert second.correct.tolist() == [1.0, 1.0, 1.0]
    assert second.proba_true.tolist() == [1.0, 1.0, 1.0]
    assert len(memo.history) == 6
    assert one.drain() == []  # results are handed out once
    one.close()


def test_a_lane_that_does_not_learn_only_scores() -> None:
    """The champion's and the standby's lanes score every job and never teach their model."""
    memo = Memo()
    one = lane(memo, learns=False)
    one.submit(job(1))
    one.submit(job(2, repeat_of=1))
    first, second = one.drain()
    assert memo.history == []
    assert second.correct.tolist() == [0.0, 0.0, 0.0]
    assert (first.learned, first.ranges) == (0, ())


def test_a_lane_more_than_max_backlog_behind_skips_its_oldest_jobs() -> None:
    """A slow model does not fall behind without bound: with job 1 still learning and two queued,
    each further job makes the lane skip its oldest queued one, reported as skipped and counted.
    Once the model is fast again it learns the rest, and only those."""
    gate, entered = threading.Event(), threading.Event()
    slow = Gated(Memo(), gate, entered)
    one = lane(slow, threaded=True, max_backlog=2)
    try:
        one.submit(job(1))
        assert entered.wait(10), "the lane never started job 1"
        for seq in (2, 3, 4, 5):
            one.submit(job(seq))
        assert one.backlog == 3  # job 1 running, 4 and 5 queued
        skipped = one.drain()
        assert [(r.seq, r.skipped, r.learned) for r in skipped] == [(2, True, 0), (3, True, 0)]
        assert one.skipped_total == 2
        assert skipped[0].error == "2 batches behind: skipped batch 2 (3 examples)"
        assert skipped[0].ranges == ()  # nothing learned: a gap in the lineage
        assert not one.wait_idle(timeout_s=0.05)  # bounded: it says so when the lane is still busy
    finally:
        gate.set()
    idle(one)
    done = one.drain()
    assert [(r.seq, r.skipped, r.learned) for r in done] == [(1, False, 3), (4, False, 3), (5, False, 3)]
    assert {row[0] for row in slow.inner.history} == {1.0, 4.0, 5.0}  # type: ignore[attr-defined]
    assert one.backlog == 0
    one.close()


def test_a_lane_whose_oldest_waiting_job_is_too_old_skips_it_however_short_its_queue() -> None:
    """Batches grow when serving slows down: a few queued jobs can be seconds of work. A job that
    waited longer than ``max_age_s`` is skipped when the next one comes (age 0: at once)."""
    gate, entered = threading.Event(), threading.Event()
    slow = Gated(Memo(), gate, entered)
    one = ThreadLane("fork", LaneState("default/2", slow, True), max_backlog=100, max_age_s=0.0, threaded=True)
    try:
        one.submit(job(1))
        assert entered.wait(10), "the lane never started job 1"
        one.submit(job(2))
        one.submit(job(3))  # job 2 has waited longer than 0 s: skipped, job 3 waits
        skipped = one.drain()
        assert [(r.seq, r.skipped) for r in skipped] == [(2, True)]
        assert skipped[0].error is not None and skipped[0].error.startswith("its oldest batch waited")
        assert one.skipped_total == 1
    finally:
        gate.set()
    idle(one)
    assert [(r.seq, r.skipped) for r in one.drain()] == [(1, False), (3, False)]
    one.close()


def test_an_inline_lane_never_skips() -> None:
    one = lane(Memo(), max_backlog=1)
    for seq in range(1, 6):
        one.submit(job(seq))
    assert [r.skipped for r in one.drain()] == [False] * 5
    assert one.skipped_total == 0


def test_a_snapshot_holds_queued_jobs_and_undrained_results_and_a_rebuilt_lane_redoes_exactly_them() -> None:
    """At the end of the input a lane may still have work (on_eof's wait timed out): the snapshot
    keeps the model as it is, the results nobody collected and the jobs not yet run. A lane built
    from it runs those jobs once, and nothing else."""
    memo = Memo()
    one = lane(memo, threaded=True)
    one.submit(job(1))
    idle(one)
    one.close()  # the thread is gone: what is submitted now stays queued
    one.submit(job(2))
    one.submit(job(3))
    snap = one.snapshot()

    assert [j.seq for j in snap.jobs] == [2, 3]
    assert [r.seq for r in snap.results] == [1]
    assert snap.learner is not memo
    assert [row[0] for row in snap.learner.history] == [1.0] * 3  # type: ignore[attr-defined]
    assert (snap.version, snap.learns, snap.skipped_total) == ("default/2", True, 0)

    rebuilt = ThreadLane("fork", snap, max_backlog=8, threaded=False)
    results = rebuilt.drain()
    assert [r.seq for r in results] == [1, 2, 3]
    assert results[0] is snap.results[0]
    assert [row[0] for row in rebuilt.learner.history] == [1.0] * 3 + [2.0] * 3 + [3.0] * 3  # type: ignore[attr-defined]
    # the snapshot itself was not consumed: the same state rebuilds the same lane again
    again = ThreadLane("fork", snap, max_backlog=8, threaded=False)
    assert [r.seq for r in again.drain()] == [1, 2, 3]


def test_a_snapshot_is_independent_of_the_lanes_later_work() -> None:
    """Checked on the live objects, without a pickle round trip doing the copying."""
    one = lane(Memo())
    one.submit(job(1))
    snap = one.snapshot()
    one.submit(job(2))
    one.drain()
    assert [r.seq for r in snap.results] == [1]
    assert snap.jobs == []
    assert len(snap.learner.history) == 3  # type: ignore[attr-defined]
    assert len(one.learner.history) == 6  # type: ignore[attr-defined]


class Sleepy(Memo):
    """Takes half a millisecond to learn, with the GIL released meanwhile, as numpy and torch do."""

    def learn(self, x: np.ndarray, y: np.ndarray) -> None:
        time.sleep(0.0005)
        super().learn(x, y)


def test_a_snapshot_never_loses_a_job_in_flight() -> None:
    """Every job submitted before a snapshot is, in the snapshot, either still queued or done (its
    result kept, and learned by the snapshot's model): a lane resumed from it then redoes exactly the
    work not done. Taken while a threaded lane works through a backlog, as Bytewax takes it at the
    end of an epoch, many times over."""
    losses: list[str] = []
    for attempt in range(20):
        one = lane(Sleepy(), threaded=True, max_backlog=100)
        for seq in range(1, 9):
            one.submit(job(seq))
        wait_for(lambda: one.backlog <= 6, "the lane to finish its first jobs")  # noqa: B023
        snap = one.snapshot()
        queued = {j.seq for j in snap.jobs}
        done = {r.seq for r in snap.results}
        learned = {int(row[0]) for row in snap.learner.history}  # type: ignore[attr-defined]
        if queued | done != set(range(1, 9)) or learned != done:
            losses.append(f"#{attempt}: queued {sorted(queued)}, results {sorted(done)}, learned {sorted(learned)}")
        idle(one)
        one.close()
    assert losses == []


def test_a_frozen_copy_is_independent_of_later_learning() -> None:
    one = lane(trained_learner(n=200))
    frozen = one.frozen()
    before = frozen.predict_proba(PROBE)
    np.testing.assert_array_equal(before, one.learner.predict_proba(PROBE))
    x = np.array([[3.0, 3.0], [-3.0, -3.0]] * 50)
    for seq in range(1, 6):
        one.submit(Job(seq, x, np.tile([0, 1], 50).astype(np.int64), np.zeros(100, dtype=np.int8)))
    np.testing.assert_array_equal(frozen.predict_proba(PROBE), before)
    assert not np.allclose(one.learner.predict_proba(PROBE), before)


def test_results_keep_the_version_that_made_them_across_rename_and_replace() -> None:
    """A promoted candidate goes on as a new version (rename); a refused fork restarts from the
    champion (replace). What was made before keeps its version; what follows carries the new one."""
    memo = Memo()
    one = lane(memo)
    one.submit(job(1))
    one.rename("default/3")
    one.submit(job(2))
    fresh = Memo()
    one.replace("default/4", fresh, learns=False)
    one.submit(job(3, repeat_of=1))
    r1, r2, r3 = one.drain()
    assert [r1.version, r2.version, r3.version] == ["default/2", "default/3", "default/4"]
    assert one.version == "default/4"
    assert one.learner is fresh
    assert not one.learns
    assert fresh.history == []  # replaced by a model that does not learn
    assert r3.correct.tolist() == [0.0, 0.0, 0.0]  # the new model never saw job 1's rows


def test_a_learn_failure_is_reported_and_the_lane_carries_on() -> None:
    broken = Broken(trained_learner(n=200), learn=True)
    one = lane(broken)
    one.submit(job(1))
    broken.fail_learn = False
    one.submit(job(2))
    failed, fine = one.drain()
    assert failed.error == "learn: OverflowError: math range error"
    assert (failed.learned, failed.ranges) == (0, ())
    assert len(failed.correct) == 3  # it was still scored
    assert (fine.error, fine.learned, fine.ranges) == (None, 3, job(2).ranges)


@pytest.mark.parametrize(
    ("how", "said"), [("predict", "RuntimeError: boom"), ("nan", "not finite"), ("short", "shape")]
)
def test_a_model_that_cannot_predict_is_scored_wrong_and_reported(how: str, said: str) -> None:
    """Raising, NaN and too few rows are all a failure to predict: scored wrong, never right."""
    broken = Broken(Memo(), predict=how == "predict", nan=how == "nan", short=how == "short")
    broken.inner.learn(job(1).x, job(1).y)  # it would be right on these rows
    one = lane(broken, learns=False)
    one.submit(job(2, repeat_of=1))
    (result,) = one.drain()
    assert result.error is not None and result.error.startswith("predict: ") and said in result.error
    assert result.correct.tolist() == [0.0, 0.0, 0.0]
    assert result.proba_true.tolist() == [0.0, 0.0, 0.0]


def test_a_model_that_cannot_predict_still_learns_and_its_lineage_says_so() -> None:
    """A learning lane whose predict fails still learns the job: the result must carry the job's
    offsets, or the registry records samples learned without the offsets they came from."""
    broken = Broken(Memo(), predict=True)
    one = lane(broken)
    one.submit(job(1))
    (result,) = one.drain()
    assert result.learned == 3
    assert len(broken.inner.history) == 3  # type: ignore[attr-defined]
    assert result.ranges == job(1).ranges


def test_an_empty_job_is_neither_scored_nor_learned() -> None:
    """A batch with no labelled example still reaches every lane (its offsets were read)."""
    memo = Memo()
    one = lane(memo)
    empty = Job(1, np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8))
    one.submit(empty)
    (result,) = one.drain()
    assert (len(result.correct), result.learned, result.error) == (0, 0, None)
    assert memo.history == []


def test_results_drain_in_submission_order_from_a_threaded_lane() -> None:
    one = lane(trained_learner(LOGREG, n=100), threaded=True)
    for seq in range(1, 21):
        one.submit(job(seq, n=5, y=seq % 2))
    idle(one)
    results: list[LaneResult] = one.drain()
    assert [r.seq for r in results] == list(range(1, 21))
    one.close()


def test_close_ends_the_thread() -> None:
    gate, entered = threading.Event(), threading.Event()
    one = lane(Gated(Memo(), gate, entered), threaded=True)
    one.submit(job(1))
    assert entered.wait(10)
    gate.set()
    idle(one)
    one.close()
    assert one._thread is not None
    wait_for(lambda: not one._thread.is_alive(), "the lane's thread to end")  # type: ignore[union-attr]


def test_a_control_call_waits_for_the_job_in_progress_not_the_whole_backlog() -> None:
    """A plain lock is not fair: the lane's thread could take it again for every queued job and keep
    the train step (the serving thread) waiting for the whole backlog. A frozen copy waits for the
    job in progress only: the queued ones are still queued when it returns."""
    gate, entered = threading.Event(), threading.Event()
    slow = Gated(Memo(), gate, entered)
    one = lane(slow, threaded=True, max_backlog=100)
    try:
        one.submit(job(1))
        assert entered.wait(10), "the lane never started job 1"
        for seq in range(2, 12):
            one.submit(job(seq))
        copies: list[Learner] = []
        freezer = threading.Thread(target=lambda: copies.append(one.frozen()))
        freezer.start()
        wait_for(lambda: one._waiting == 1, "the freeze to wait for the model")
        gate.set()  # job 1 ends; the freeze must come before job 2
        freezer.join(timeout=10)
        assert copies, "frozen() did not return within 10 s"
        assert {row[0] for row in copies[0].inner.history} == {1.0}  # type: ignore[attr-defined]
    finally:
        gate.set()
    idle(one)
    one.close()


def test_a_model_swapped_in_skips_the_queued_jobs_it_has_run_already() -> None:
    """A new fork is a copy of a champion that learned up to job 3: the fork's lane still queues
    jobs 2..5, and the new model must neither learn 2 and 3 twice nor be scored on them."""
    gate, entered = threading.Event(), threading.Event()
    one = lane(Gated(Memo(), gate, entered), threaded=True, max_backlog=100)
    try:
        one.submit(job(1))
        assert entered.wait(10), "the lane never started job 1"
        for seq in (2, 3, 4, 5):
            one.submit(job(seq))
        fresh = Memo()
        replacer = threading.Thread(target=lambda: one.replace("default/9", fresh, learns=True, through=3))
        replacer.start()
        wait_for(lambda: one._waiting == 1, "the swap to wait for the model")
        gate.set()
        replacer.join(timeout=10)
    finally:
        gate.set()
    idle(one)
    assert [(r.seq, r.version) for r in one.drain()] == [(1, "default/2"), (4, "default/9"), (5, "default/9")]
    assert {row[0] for row in fresh.history} == {4.0, 5.0}
    one.close()
