"""The promoter: the one component that changes which model serves.

Every change goes the same way: the checkpoint of a newly serving version is saved (digest
recorded), the decision is written to the registry (which updates the versions' status and
times), and only then is the new serving table published to the board — so whatever serves is
always in the registry, with the bytes to load it again after a restart. The decision comes back
for the model-events topic.

With a serving-table log (`daemon.serving_log.ServingLog`), every table the board is given is
also written there, and acknowledged, before the promoter returns: the other processes of a
cluster follow it, and the last one per group survives a restart.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from dataflows.ports import Decision, Registry
from dataflows.serve import Served, ServingBoard, ServingTable
from learners import Learner

__all__ = ["BoardPromoter", "TableLog"]

log = logging.getLogger("headwater")


class TableLog(Protocol):
    """Where the serving tables go beyond this process (`daemon.serving_log.ServingLog`)."""

    def publish(self, table: ServingTable) -> None: ...


class BoardPromoter:
    """Acts on the registry, this process's serving board and the serving-table log (if any).
    ``seed`` salts the canary's key hash."""

    def __init__(
        self, registry: Registry, board: ServingBoard, *, seed: int = 0, tables: TableLog | None = None
    ) -> None:
        self.registry = registry
        self.board = board
        self.seed = seed
        self.tables = tables
        self._lock = threading.Lock()

    def install(self, group: str, *, version: str, learner: Learner, reason: str, ts_ms: int) -> Decision | None:
        with self._lock:
            info = self.registry.version(version)
            decision = None
            if info.status != "champion":
                decision = Decision(group, "promote", version, reason, ts_ms)
                self.registry.save_checkpoint(version, learner)
                self.registry.record_decision(decision)
            self._publish(self.board.publish(ServingTable(group, Served(version, learner), seed=self.seed)))
            log.info("group %s: %s serves (%s)", group, version, reason)
            return decision

    def promote(
        self, group: str, *, version: str, learner: Learner, previous: str, reason: str,
        evidence: Mapping[str, Any], ts_ms: int,
    ) -> Decision:  # fmt: skip
        return self._serve(group, "promote", version, learner, previous, reason, evidence, ts_ms)

    def rollback(
        self, group: str, *, version: str, learner: Learner, previous: str, reason: str,
        evidence: Mapping[str, Any], ts_ms: int,
    ) -> Decision:  # fmt: skip
        return self._serve(group, "rollback", version, learner, previous, reason, evidence, ts_ms)

    def refuse(self, group: str, *, version: str, reason: str, evidence: Mapping[str, Any], ts_ms: int) -> Decision:
        return self._record(Decision(group, "refuse", version, reason, ts_ms, evidence=dict(evidence)))

    def retire(self, group: str, *, version: str, reason: str, evidence: Mapping[str, Any], ts_ms: int) -> Decision:
        return self._record(Decision(group, "retire", version, reason, ts_ms, evidence=dict(evidence)))

    def set_canary(self, group: str, *, version: str | None, learner: Learner | None, share: float) -> None:
        with self._lock:
            canary = None if version is None or learner is None or share <= 0 else Served(version, learner)
            if canary is not None:  # what serves can always be loaded again
                self.registry.save_checkpoint(canary.version, canary.learner)
            self._publish(self.board.update(
                group, lambda table: dataclasses.replace(table, canary=canary, canary_share=share if canary else 0.0)
            ))  # fmt: skip
        if canary is not None:
            log.info("group %s: canary %s serves %.0f%% of keys", group, version, 100 * share)

    def serve_fresh(self, group: str, *, champion: str, version: str | None, learner: Learner | None) -> bool:
        # Called from a lane's thread after each batch: the board's own lock suffices (the
        # compare-and-set on the champion's version orders it with promotions and rollbacks).
        if version is None or learner is None:
            return self.board.drop_fresh(group)
        return self.board.refresh(group, champion, Served(version, learner))

    def serving(self, group: str) -> tuple[str, Learner] | None:
        try:
            table = self.board.current(group)
        except LookupError:
            return None
        return table.champion.version, table.champion.learner

    def _serve(
        self, group: str, action: str, version: str, learner: Learner, previous: str, reason: str,
        evidence: Mapping[str, Any], ts_ms: int,
    ) -> Decision:  # fmt: skip
        decision = Decision(group, action, version, reason, ts_ms, previous=previous, evidence=dict(evidence))
        with self._lock:
            # A promoted version's checkpoint is the frozen model that serves from now on; a version
            # rolled back to was saved when it first served, and has not changed since.
            if action == "promote" or self.registry.version(version).checkpoint_sha256 is None:
                self.registry.save_checkpoint(version, learner)
            self.registry.record_decision(decision)
            self._publish(self.board.publish(ServingTable(group, Served(version, learner), seed=self.seed)))
        log.warning("group %s: %s %s (was %s): %s", group, action, version, previous, reason)
        return decision

    def _publish(self, table: ServingTable) -> None:
        if self.tables is not None:
            self.tables.publish(table)

    def _record(self, decision: Decision) -> Decision:
        with self._lock:
            self.registry.record_decision(decision)
        log.info("group %s: %s %s: %s", decision.group, decision.action, decision.version, decision.reason)
        return decision
