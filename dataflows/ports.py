"""What the flow is handed: small protocols, so that the whole flow runs in memory in unit tests and
on the real broker in production. `dataflows` never imports `daemon`: the daemon implements these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from dataflows.records import CommandRecord, ModelReport
from learners import Learner

__all__ = [
    "DECISION_ACTIONS",
    "CheckpointRef",
    "Clock",
    "Decision",
    "Metrics",
    "NullMetrics",
    "OffsetRange",
    "Promoter",
    "Registry",
    "VersionInfo",
]

Clock = Callable[[], float]  # seconds since the Unix epoch


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Offsets ``first..last`` (both included) of one topic partition."""

    topic: str
    partition: int
    first: int
    last: int


@dataclass(frozen=True)
class VersionInfo:
    """One model version as the registry knows it.

    ``id`` is ``"<group>/<number>"``. ``status`` is ``candidate`` (learning, not serving),
    ``champion`` (serving, frozen), ``standby`` (the previous champion, kept on probation for a
    rollback) or ``retired``. ``ranges`` are the offsets this version learned from itself (merged;
    a gap is a stretch it did not learn); what it inherited is its ``parent``'s lineage.
    """

    id: str
    group: str
    number: int
    name: str  # the config slot it came from: "champion", or a candidate's name
    parent: str | None
    framework: str
    learner_class: str  # "module:QualName", used to load its checkpoint
    config: Mapping[str, Any]
    status: str
    created_ms: int
    promoted_ms: int | None = None
    retired_ms: int | None = None
    samples: int = 0
    checkpoint_sha256: str | None = None
    ranges: Sequence[OffsetRange] = ()


DECISION_ACTIONS = ("promote", "refuse", "rollback", "retire", "lead")  # what a `Decision` may do


@dataclass(frozen=True)
class Decision:
    """Something the promoter did, with why: ``promote``, ``refuse``, ``rollback`` or ``retire``;
    or ``lead``: in a group's vote, ``version`` now weighs clearly more than ``previous``, the
    member that led before (`dataflows.train.vote`; no version changes status).

    ``version`` is the version acted on; ``previous`` the champion it replaced (promote, rollback).
    ``evidence`` holds the numbers of the verdicts that led to it.
    """

    group: str
    action: str
    version: str
    reason: str
    ts_ms: int
    previous: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointRef:
    """A saved model state in the registry's checkpoint store: the class that loads it, the
    digest its bytes must have, and where it lies (relative to the store)."""

    learner_class: str
    sha256: str
    path: str


@runtime_checkable
class Registry(Protocol):
    """Model versions, their lineage down to Kafka offsets, their verdicts and the decisions taken.

    Thread-safe: the flow's workers call it from their own threads.
    """

    def create_version(
        self,
        group: str,
        *,
        name: str,
        parent: str | None,
        learner: Learner,
        config: Mapping[str, Any],
        ts_ms: int,
        status: str = "candidate",
    ) -> VersionInfo:
        """Register a new version (numbered after the group's last one) and return it."""
        ...

    def record_learning(self, version: str, ranges: Sequence[OffsetRange], samples: int) -> None:
        """Add what a version learned from: ranges are merged with what it had (adjacent ones join)."""
        ...

    def record_verdict(
        self, version: str, evaluator: str, phase: str, reason: str, evidence: Mapping[str, Any], ts_ms: int
    ) -> None: ...

    def record_decision(self, decision: Decision) -> None:
        """Log a decision and apply it to the versions' status and times (promoted, retired)."""
        ...

    def save_checkpoint(self, version: str, learner: Learner) -> str:
        """Save the learner's state as this version's checkpoint; return its sha256."""
        ...

    def load_checkpoint(self, version: str) -> Learner:
        """Load a version's checkpoint, refusing bytes whose digest differs from the recorded one.
        An unknown version raises a `LookupError`."""
        ...

    def store_state(self, learner: Learner) -> CheckpointRef:
        """Save a model's state for a recovery snapshot (not a version's checkpoint)."""
        ...

    def load_state(self, ref: CheckpointRef) -> Learner:
        """Load what `store_state` saved, refusing bytes whose digest differs."""
        ...

    def discard_state(self, ref: CheckpointRef) -> None:
        """Delete a state no snapshot needs any more (kept if it is also a version's checkpoint)."""
        ...

    def champion(self, group: str) -> VersionInfo | None: ...

    def version(self, version_id: str) -> VersionInfo: ...

    def versions(self, group: str) -> list[VersionInfo]: ...

    def decisions(self, group: str, *, skip: int = 0) -> list[Decision]:
        """The group's decisions in the order they were made, from the ``skip``-th on."""
        ...

    def decision_count(self, group: str) -> int: ...

    def verdicts(self, version: str) -> list[dict[str, Any]]: ...

    def record_command(self, record: CommandRecord) -> None:
        """Log an operator's command with its outcome (every one read, in order)."""
        ...

    def commands(self, group: str, *, skip: int = 0, limit: int = -1) -> list[CommandRecord]: ...

    def command(self, command_id: str) -> CommandRecord | None:
        """The first record of command ``command_id``; None if it was never read."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Promoter(Protocol):
    """The one component that changes which model serves a group.

    Each call records the decision in the registry (with the checkpoint of a newly serving
    version) and publishes the new serving table, then returns the decision for the model-events
    topic. Learners handed in are frozen copies: nothing teaches them again.
    """

    def install(self, group: str, *, version: str, learner: Learner, reason: str, ts_ms: int) -> Decision | None:
        """Put the group's champion on the board: a new group's first one (a decision, returned),
        or the registry's champion after a restart (nothing new decided: None)."""
        ...

    def promote(
        self, group: str, *, version: str, learner: Learner, previous: str, reason: str,
        evidence: Mapping[str, Any], ts_ms: int,
    ) -> Decision: ...  # fmt: skip

    def rollback(
        self, group: str, *, version: str, learner: Learner, previous: str, reason: str,
        evidence: Mapping[str, Any], ts_ms: int,
    ) -> Decision: ...  # fmt: skip

    def refuse(self, group: str, *, version: str, reason: str, evidence: Mapping[str, Any], ts_ms: int) -> Decision: ...

    def retire(self, group: str, *, version: str, reason: str, evidence: Mapping[str, Any], ts_ms: int) -> Decision: ...

    def set_canary(self, group: str, *, version: str | None, learner: Learner | None, share: float) -> None:
        """Let ``learner`` serve ``share`` of the group's keys (None: no canary)."""
        ...

    def serving(self, group: str) -> tuple[str, Learner] | None:
        """The champion that serves now (version, learner), if the group has one."""
        ...

    def serve_fresh(self, group: str, *, champion: str, version: str | None, learner: Learner | None) -> bool:
        """Live refresh: let ``learner``, the latest state of a fork ``version`` of ``champion``,
        serve the champion's route while ``champion`` is the group's champion (None: the champion
        itself serves again). Nothing is decided or saved: the fork's version and lineage are in
        the registry already, and the next promotion checks what it learned. False if not done."""
        ...


@runtime_checkable
class Metrics(Protocol):
    """Where the flow reports what it measures (Prometheus in the daemon, nothing in tests).

    Called once per micro-batch, poll or flush, never per event: the serve path handles ~100k
    events/s. docs/metrics.md says what each call becomes in Prometheus.
    """

    def served(self, group: str, route: str, n: int, latency_s: float) -> None:
        """``n`` predictions made on ``route`` (champion, canary, live) in one micro-batch;
        ``latency_s``: their mean event→prediction latency (NaN when no event had a time)."""
        ...

    def prediction_latencies(self, group: str, route: str, latencies_s: npt.NDArray[np.float64]) -> None:
        """The event→prediction latency of each prediction ``served`` just counted (NaN: the event
        had no time), for a histogram exact per event."""
        ...

    def batch_served(self, group: str, records: int, serve_s: float) -> None:
        """One micro-batch of ``records`` raw messages decoded, served and encoded in ``serve_s``."""
        ...

    def consumed(self, topic: str, n: int) -> None:
        """``n`` records read from ``topic`` by one poll of one partition."""
        ...

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        """Records of a partition not read yet (its end offset less the next offset to read)."""
        ...

    def flushed(self, flush_s: float) -> None:
        """The sink waited ``flush_s`` for the broker to acknowledge a batch of messages."""
        ...

    def delivery_failed(self, topic: str, n: int) -> None:
        """The broker refused, or did not acknowledge, ``n`` messages for ``topic``."""
        ...

    def serving(self, group: str, route: str, version: str | None, since_s: float) -> None:
        """``version`` serves ``route`` since ``since_s`` (Unix seconds); None: the route is off."""
        ...

    def canary_share(self, group: str, share: float) -> None:
        """The share of the group's keys the canary serves now (0: no canary)."""
        ...

    def learned(self, group: str, model: str, n: int, learn_s: float, lag_batches: int) -> None: ...

    def decided(self, group: str, action: str) -> None: ...

    def reported(self, report: ModelReport) -> None:
        """A model's report on one labelled batch: rolling accuracy, lag, labels waiting, skips."""
        ...

    def forgot(self, group: str, model: str) -> None:
        """Slot ``model`` of ``group`` is gone (retired, its probation over, dropped): its gauges go."""
        ...

    def voted(self, group: str, weights: Mapping[str, float], choice: str) -> None:
        """The vote's weight of each member (by slot) and what serves: ``vote`` or one member."""
        ...

    def quarantined(self, group: str, *, action: str | None = None, held: int | None = None) -> None:
        """The label quarantine: ``action`` taken (engaged, cleared, released), labelled examples ``held`` now."""
        ...

    def commanded(self, group: str, kind: str, outcome: str) -> None: ...

    def dead_lettered(self, reason: str, n: int) -> None: ...

    def controlled(self, group: str, *, paused: int, frozen: bool, canary_ceiling: float | None) -> None:
        """What operators' commands hold now: paused candidates, decisions frozen, the canary's ceiling."""
        ...


class NullMetrics:
    """Measures nothing."""

    def served(self, group: str, route: str, n: int, latency_s: float) -> None:
        return None

    def prediction_latencies(self, group: str, route: str, latencies_s: npt.NDArray[np.float64]) -> None:
        return None

    def batch_served(self, group: str, records: int, serve_s: float) -> None:
        return None

    def consumed(self, topic: str, n: int) -> None:
        return None

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        return None

    def flushed(self, flush_s: float) -> None:
        return None

    def delivery_failed(self, topic: str, n: int) -> None:
        return None

    def serving(self, group: str, route: str, version: str | None, since_s: float) -> None:
        return None

    def canary_share(self, group: str, share: float) -> None:
        return None

    def learned(self, group: str, model: str, n: int, learn_s: float, lag_batches: int) -> None:
        return None

    def decided(self, group: str, action: str) -> None:
        return None

    def reported(self, report: ModelReport) -> None:
        return None

    def forgot(self, group: str, model: str) -> None:
        return None

    def voted(self, group: str, weights: Mapping[str, float], choice: str) -> None:
        return None

    def quarantined(self, group: str, *, action: str | None = None, held: int | None = None) -> None:
        return None

    def commanded(self, group: str, kind: str, outcome: str) -> None:
        return None

    def dead_lettered(self, reason: str, n: int) -> None:
        return None

    def controlled(self, group: str, *, paused: int, frozen: bool, canary_ceiling: float | None) -> None:
        return None
