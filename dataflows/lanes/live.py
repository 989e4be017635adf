"""Live refresh: a refresh fork's lane hands serving its model's latest state after the batches it
learns (`promotion.live_refresh`; the train step decides when it may, `dataflows.train.live.sync`).
This is how a thread lane does it; a process lane's model serves where it learns, asked over a
pipe (`dataflows.lanes.ask`).

A lane hands its state over in one of two ways, chosen by what they cost it, measured:

- **copy**: ``clone(include_state=True)`` after a batch. Cheap for linear models and small networks
  (0.15 ms for River's logistic regression, 0.8 ms for the MLP).
- **replay**: two replicas of the model take turns on the board. The one off the board catches up
  by learning, in order, the batches the lane learned since its last turn, and goes on. That costs
  twice the learning instead of a copy per turn, which pays for models slow to copy and quick to
  teach: a grown Hoeffding tree takes 13.7 ms to copy and 4.7 ms to learn 60 events; MOA's forest
  of 10 trees about 100 ms against 13 to 22 ms. A lane switches to replay when its copies take
  longer than learning two batches.

A replica learns exactly what the lane's model learned, in the same order, so a deterministic
learner ends in the same state. Copies take at most ``budget`` of the lane's time, or what replay
would (`LiveRefresh.rest`): a state that is slow to copy is handed over less often. Replay costs
twice the learning whatever the interval, so it goes on after every batch; either way a lane with
batches waiting learns them first and hands nothing over until it has caught up.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

from dataflows.jobs import Job
from dataflows.portfolio import Member
from dataflows.ports import Promoter
from learners import Artifact, Learner
from learners.base import FloatArray, IntArray

if TYPE_CHECKING:
    from dataflows.serve import ServingBoard

__all__ = ["MAX_REPLAY_JOBS", "Guarded", "LiveRefresh", "MemberRefresh", "Replicas"]

log = logging.getLogger("headwater")

MAX_REPLAY_JOBS = 1000  # batches kept for replicas to catch up on; beyond, they are dropped and made again
MEMBER_MAX_BEHIND = 4  # a vote member behind on its batches hands over every this many (`MemberRefresh`)


@dataclass(eq=False)
class LiveRefresh:
    """What a lane needs to serve what it learns: after a batch it learned, the lane hands its
    state to the promoter to serve in place of ``champion``, the version the fork continues
    (`Promoter.serve_fresh`), as long as the lane still holds ``fork``."""

    promoter: Promoter
    group: str
    champion: str
    fork: str
    budget: float = 0.2
    next_at: float = 0.0  # monotonic time before which nothing is handed over
    error: str | None = None  # a copy or replay that failed stops the publishing (the champion serves)

    handed: int = -1  # the last job whose state was handed over

    def due(self, version: str, now: float) -> bool:
        return self.error is None and version == self.fork and now >= self.next_at

    def overdue(self, seq: int) -> bool:
        """Whether to hand over after job ``seq`` though batches wait: never for a live fork (it
        catches up first: `bench/results/parity-live.md`)."""
        return False

    def rest(self, copy_s: float, now: float, learn_s: float = 0.0) -> None:
        """After a copy that takes ``copy_s`` (the median of the lane's last copies), the next one
        waits until copies are within ``budget`` of the lane's time, unless a copy costs no more than replay would
        (learning a batch, ``learn_s``, twice): then the next batch is handed over too. Resting
        there saved less than replay spends and left serving several batches behind: a Hoeffding
        tree whose copy took 1.5 to 2 batches of learning was handed over every 6 to 8 batches, and
        served 2 points below the tree alone on RBF at 3,000 events/s (1.2 to 1.4 without the
        rest). A replay costs twice the learning since the replica's last turn whenever it comes,
        so the lane does not rest after one: waiting would only make the next longer (it skips
        turns while it has a backlog instead).

        >>> live = LiveRefresh(promoter=None, group="g", champion="g/1", fork="g/2", budget=0.2)
        >>> live.rest(0.010, now=0.0, learn_s=0.004)  # dearer than replay: 40 ms of rest
        >>> round(live.next_at, 3)
        0.04
        >>> live.rest(0.006, now=1.0, learn_s=0.004)  # cheaper than replay: none
        >>> live.next_at
        1.0
        """
        cheaper_than_replay = 0 < copy_s <= 2 * learn_s
        self.next_at = now if cheaper_than_replay else now + copy_s * (1 - self.budget) / self.budget

    def publish(self, learner: Learner) -> bool:
        return self.promoter.serve_fresh(self.group, champion=self.champion, version=self.fork, learner=learner)


@dataclass(eq=False)
class MemberRefresh(LiveRefresh):
    """A vote member's lane hands its latest state to the board's portfolio (`model.vote`,
    `dataflows.train.vote`) the same way, as ``member`` (its slot), while it holds ``fork``."""

    member: str = ""
    board: ServingBoard | None = None
    max_behind: int = MEMBER_MAX_BEHIND

    def overdue(self, seq: int) -> bool:
        """A member behind on its batches still hands over every ``max_behind`` of them: the vote
        weighs it by how its lane scores now, so the state that serves must not fall far behind
        (with a lane that never caught up, it stopped at its last quiet moment: the hyperplane
        stream of `bench/results/quality.md` served 65 % where every member scored over 85 %)."""
        return seq - self.handed >= self.max_behind

    def publish(self, learner: Learner) -> bool:
        assert self.board is not None
        return self.board.serve_member(self.group, self.member, Member(self.fork, learner, self.handed))


class Guarded:
    """A replica as the board holds it: a lock orders serving's predictions with its catching up
    (a prediction that fetched it just before it left the board may wait for a batch of replay,
    and then predicts with the fresher state of the same version)."""

    def __init__(self, learner: Learner, through: int) -> None:
        self.inner = learner
        self.through = through  # the last job it has learned
        self.lock = threading.Lock()
        self.n_features = learner.n_features
        self.n_classes = learner.n_classes

    def predict_proba(self, x: FloatArray) -> FloatArray:
        with self.lock:
            return self.inner.predict_proba(x)

    def learn(self, x: FloatArray, y: IntArray) -> None:
        with self.lock:
            self.inner.learn(x, y)

    def clone(self, *, include_state: bool = False) -> Self:
        with self.lock:
            return type(self)(self.inner.clone(include_state=include_state), self.through)

    def save(self, directory: Path) -> Artifact:
        with self.lock:
            return self.inner.save(directory)

    @classmethod
    def load(cls, artifact: Artifact) -> Self:
        msg = "a replica is never loaded: its lane's model is"
        raise NotImplementedError(msg)


class Replicas:
    """Two replicas of a lane's model and the batches the lane learned since the older one's state.
    The lane calls `learned` after every batch its model learned and `turn` to hand one over."""

    def __init__(self, learner: Learner, through: int) -> None:
        self.pair = (
            Guarded(learner.clone(include_state=True), through),
            Guarded(learner.clone(include_state=True), through),
        )
        self.jobs: collections.deque[Job] = collections.deque()
        self.on_board = 1  # the next turn goes to the other one

    def learned(self, job: Job) -> bool:
        """Keep ``job`` for the replicas; False when too many wait (drop these replicas)."""
        self.jobs.append(job)
        return len(self.jobs) <= MAX_REPLAY_JOBS

    def turn(self) -> Guarded:
        """The replica off the board, caught up with every batch the lane learned: hand it over."""
        spare = self.pair[1 - self.on_board]
        with spare.lock:
            for job in self.jobs:
                if job.seq > spare.through:
                    spare.inner.learn(job.x, job.y)
                    spare.through = job.seq
        self.on_board = 1 - self.on_board
        oldest = min(r.through for r in self.pair)
        while self.jobs and self.jobs[0].seq <= oldest:
            self.jobs.popleft()
        return spare
