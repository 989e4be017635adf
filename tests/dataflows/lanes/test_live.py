"""How a thread lane hands its state to serving (`dataflows.lanes.live`): copies within their share
of the lane's time, replicas that catch up on exactly what the lane learned, and a board that serves
a fresh state only in place of the champion it continues, and never one that cannot predict."""

from __future__ import annotations

import numpy as np

from dataflows.jobs import Job
from dataflows.lanes.live import LiveRefresh, Replicas
from dataflows.serve import Served, ServingBoard, ServingTable, serve_batch
from learners.base import FloatArray
from tests.dataflows.helpers import (
    GROUP,
    Stream,
    Wrapped,
    trained_learner,
)


def test_copies_keep_within_their_share_of_the_lanes_time() -> None:
    live = LiveRefresh(promoter=None, group=GROUP, champion="g/1", fork="g/2", budget=0.2)  # type: ignore[arg-type]
    assert live.due("g/2", 0.0)
    live.rest(0.05, now=10.0)  # copies take 50 ms: the next one waits 200 ms (4 x 50 ms)
    assert not live.due("g/2", 10.19)
    assert live.due("g/2", 10.21)
    assert not live.due("g/3", 11.0)  # the lane moved on to another version: never its state


def test_the_board_serves_a_fresh_state_only_in_place_of_the_champion_it_continues() -> None:
    board = ServingBoard()
    champion, fork = Served("g/1", trained_learner()), Served("g/2", trained_learner())
    board.publish(ServingTable("g", champion))
    assert not board.refresh("g", "g/0", fork)  # continues another champion: refused
    assert board.current("g").fresh is None
    assert board.refresh("g", "g/1", fork)
    assert board.current("g").fresh is fork
    assert board.current("g").champion is champion
    assert board.drop_fresh("g")
    assert board.current("g").fresh is None
    assert not board.drop_fresh("g")


def test_replicas_catch_up_on_exactly_what_the_lane_learned() -> None:
    learner = trained_learner()
    replicas = Replicas(learner, through=0)
    stream = Stream(10)
    for seq in range(1, 6):
        x, y = stream.arrays(30)
        job = Job(seq, x, y, np.zeros(len(y), dtype=np.int8))
        learner.learn(x, y)
        assert replicas.learned(job)
        if seq % 2:  # a turn every other batch
            state = replicas.turn()
            assert state.through == seq
            probe = Stream(seq).arrays(20)[0]
            np.testing.assert_array_equal(state.predict_proba(probe), learner.predict_proba(probe))
    assert [j.seq for j in replicas.jobs] == [4, 5]  # what the replica off the board has yet to learn


class Unpredictable(Wrapped):
    def predict_proba(self, x: FloatArray) -> FloatArray:
        msg = "this copy cannot predict"
        raise RuntimeError(msg)


def test_a_live_state_that_cannot_predict_leaves_its_events_to_the_champion() -> None:
    champion = Served("g/1", trained_learner())
    table = ServingTable("g", champion, fresh=Served("g/2", Unpredictable(trained_learner())))
    out = serve_batch(table, Stream(12).batch(10, labelled=False), ["neg", "pos"], 1000.0)
    assert len(out.predictions) == 10 and not out.dead_letters
    assert {(p.version, p.route) for p in out.predictions} == {("g/1", "champion")}
    assert [(route, version) for route, version, _ in out.errors] == [("live", "g/2")]
