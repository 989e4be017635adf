"""The serving board: per group, the `ServingTable` that serves now — the champion, a canary on a
sticky share of keys, a live refresh fork's latest state, the portfolio's vote — numbered per
group (``seq``). Only the promoter publishes a new table; lanes put a live fork's or a vote
member's latest state on it (`ServingBoard.refresh`, `ServingBoard.serve_member`); the serve step
reads whichever table is current (`dataflows.serve`). In-process: every worker thread sees a
publish at once; other processes follow the serving-table topic (`daemon.serving_log`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dataflows.portfolio import Member, Portfolio
from evaluators import canary_bucket
from learners import Learner

__all__ = ["CANARY", "CHAMPION", "ROUTES", "Served", "ServingBoard", "ServingTable"]

CHAMPION, CANARY = 0, 1
ROUTES = ("champion", "canary")


@dataclass(frozen=True)
class Served:
    """A frozen model on the board: its registry version and the learner (predict only)."""

    version: str
    learner: Learner


@dataclass(frozen=True)
class ServingTable:
    """Who serves a group: the champion, and a canary on ``canary_share`` of the keys.

    An event goes to the canary iff ``canary_bucket(event.id, seed) < canary_share``: sticky, and
    raising the share keeps every key already in the canary. ``fresh``, when set, is the champion's
    refresh fork as it last learned (live refresh): it serves the champion's route instead.
    ``vote``, when ready, serves the champion's route before either (`dataflows.portfolio`).
    """

    group: str
    champion: Served
    canary: Served | None = None
    canary_share: float = 0.0
    seed: int = 0
    fresh: Served | None = None
    seq: int = 0  # the table's number in the group's history of tables (`ServingBoard.publish`)
    vote: Portfolio | None = None  # the portfolio's members and weights (`model.vote`): first on the champion's route

    def routes(self, ids: list[str]) -> np.ndarray:
        out = np.zeros(len(ids), dtype=np.int8)
        if self.canary is not None and self.canary_share > 0:
            share, seed = self.canary_share, self.seed
            out[[i for i, key in enumerate(ids) if canary_bucket(key, seed) < share]] = CANARY
        return out


class ServingBoard:
    """The current serving table of every group in this process.

    ``on_change`` is told each table that comes to serve, in order (under the board's lock: it
    must be quick and must not touch the board); the daemon's metrics follow who serves with it.
    """

    def __init__(self, on_change: Callable[[ServingTable], None] | None = None) -> None:
        self._tables: dict[str, ServingTable] = {}
        self._lock = threading.Lock()
        self._on_change = on_change

    def publish(self, table: ServingTable) -> ServingTable:
        """Serve ``table`` from now on, numbered one past the group's current table; return it.
        The portfolio's vote, which learns beside whoever is champion, carries over to it."""
        with self._lock:
            current = self._tables.get(table.group)
            if table.vote is None and current is not None and current.vote is not None:
                table = dataclasses.replace(table, vote=current.vote)
            return self._put(table)

    def serve_member(self, group: str, name: str, member: Member | None) -> bool:
        """A vote member's latest state (None: take it off); True if the group votes."""
        with self._lock:
            table = self._tables.get(group)
            if table is None or table.vote is None or (member is not None and name not in table.vote.weights):
                return False
            self._set(dataclasses.replace(table, vote=table.vote.with_member(name, member)))
            return True

    def set_vote(
        self, group: str, weights: dict[str, float] | None, choice: str, seq: int = -1,
        shares: dict[str, float] | None = None,
    ) -> None:  # fmt: skip
        """The vote's weights and the guard's choice, as of labelled job ``seq`` (None: the group
        does not vote any more); with a bandit, each member's share of the keys."""
        with self._lock:
            table = self.current(group)
            vote = None
            if weights is not None:
                vote = (table.vote or Portfolio(seed=table.seed + 1)).with_weights(weights, choice, seq, shares)
            if vote != table.vote:
                self._set(dataclasses.replace(table, vote=vote))

    def follow(self, table: ServingTable) -> bool:
        """Serve ``table``, published by another process, unless this board already has it or a
        later one (by ``seq``); True if it serves now."""
        with self._lock:
            current = self._tables.get(table.group)
            if current is not None and current.seq >= table.seq:
                return False
            self._set(table)
            return True

    def refresh(self, group: str, champion: str, fresh: Served) -> bool:
        """Serve ``fresh`` on the champion's route, if ``champion`` is still the group's champion
        (a fork's state is never served in place of a champion it does not continue)."""
        with self._lock:
            table = self._tables.get(group)
            if table is None or table.champion.version != champion:
                return False
            self._set(dataclasses.replace(table, fresh=fresh))
            return True

    def update(self, group: str, change: Callable[[ServingTable], ServingTable]) -> ServingTable:
        """Publish ``change(current table)`` atomically with the lane's `refresh` (a read, then a
        publish, could put back an older fresh state); return it."""
        with self._lock:
            return self._put(change(self.current(group)))

    def _put(self, table: ServingTable) -> ServingTable:
        current = self._tables.get(table.group)
        table = dataclasses.replace(table, seq=(current.seq if current is not None else 0) + 1)
        self._set(table)
        return table

    def _set(self, table: ServingTable) -> None:
        self._tables[table.group] = table
        if self._on_change is not None:
            self._on_change(table)

    def drop_fresh(self, group: str) -> bool:
        """The champion itself serves its route again; True if a fresh state was taken off."""
        with self._lock:
            table = self._tables.get(group)
            if table is None or table.fresh is None:
                return False
            self._set(dataclasses.replace(table, fresh=None))
            return True

    def current(self, group: str) -> ServingTable:
        table = self._tables.get(group)
        if table is None:
            msg = f"no serving table for group {group!r}: the daemon publishes one before the flow starts"
            raise LookupError(msg)
        return table
