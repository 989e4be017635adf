"""A group's training state, and the runtime object the train step's modules work on.

`GroupState` is everything a group's train step keeps: Bytewax snapshots it (pickled, into
Headwater's own recovery store only). `GroupRuntime` holds it while the flow runs, with the
collaborators (`TrainContext`), every slot's lane, and what waits for a write to the registry:

- **new**: `new_group_state`, a group around the champion that serves, a fresh version for each
  candidate (what a previous run left as candidates is retired);
- **resume**: `GroupRuntime(state, ctx)` opens every slot's lane, its model loaded from the
  registry's checkpoint store where the snapshot refers to one (`dataflows.train.reconcile` then
  brings the state in line with the registry);
- **snapshot**: `GroupRuntime.take_snapshot`, copies of the state with each lane taken at one instant
  and its model stored by reference.

`GroupState` and `Slot` are pickled under ``dataflows.train`` (the package re-exports them).
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dataflows.config import CandidateSpec, FlowConfig
from dataflows.jobs import Job, LaneState, StoredLane
from dataflows.labels import LabelJoin
from dataflows.lanes import Lane, open_lane
from dataflows.ports import CheckpointRef, Clock, Decision, Metrics, OffsetRange, Promoter, Registry
from dataflows.records import (
    CommandRecord,
    DeadLetter,
    DecisionRecord,
    ModelReport,
    QuarantineRecord,
    VerdictRecord,
    VoteRecord,
)
from dataflows.serve import ServingBoard
from dataflows.train.trials import CHAMPION_SLOT, RESTART_SLOT, PairingBuffer, Trial, is_live_fork, new_trial
from evaluators import BanditGate, ChangeDetector, LabelQuarantine, PrequentialScore, Reservoir, WeightedVote
from learners import Learner

__all__ = [
    "KEEP_SNAPSHOTS",
    "STATE_FORMAT",
    "GroupRuntime",
    "GroupState",
    "Slot",
    "TrainContext",
    "TrainOutput",
    "decision_record",
    "new_candidate",
    "new_group_state",
]

TrainOutput = DeadLetter | ModelReport | VerdictRecord | DecisionRecord | CommandRecord | VoteRecord | QuarantineRecord
STATE_FORMAT = 2  # bump when GroupState's shape changes (format 1: one model that served and learned)
KEEP_SNAPSHOTS = 20  # recovery snapshots whose stored model states are kept (Bytewax resumes from a recent one)


@dataclass
class Slot:
    """One model of a group and what the group knows about it."""

    name: str  # "champion", "standby", or a candidate's name
    role: str  # champion, candidate or standby
    lane: LaneState | StoredLane  # the model and its unfinished work (in a snapshot: the model stored)
    score: PrequentialScore
    spec: CandidateSpec | None = None
    trial: Trial | None = None
    refusals: int = 0  # in a row: each one doubles the wait before the next trial (up to 16 times)


@dataclass
class GroupState:
    """Everything a group's train step keeps; Bytewax snapshots it (pickle, own recovery store only)."""

    name: str
    features: list[str]
    classes: list[int | str]
    slots: dict[str, Slot]
    join: LabelJoin
    seq: int = 0  # labelled-batch sequence number
    pairing: PairingBuffer = field(default_factory=PairingBuffer)
    reservoir: Reservoir | None = None
    trusted: tuple[np.ndarray, np.ndarray] | None = None  # the reservoir, frozen at the last promotion
    # The canary last published: (candidate version, share, version of the snapshot that serves)
    canary: tuple[str, float, str] | None = None
    outbox: list[DecisionRecord] = field(default_factory=list)  # decided outside the step, not yet emitted
    change: ChangeDetector = field(default_factory=ChangeDetector)  # over the champion's correctness
    champion_through: int = 0  # the last job the champion's model had learned when it was frozen
    # The group's decisions in the registry when this snapshot was taken: a resume emits the later
    # ones again (None: a state not taken by a snapshot, or taken before this was kept).
    decided: int | None = None
    # What operators' commands hold (`dataflows.train.commands`); class-level defaults, so that a
    # snapshot taken before commands existed reads as "nothing held" without a format change.
    paused: frozenset[str] = frozenset()  # candidates that score but learn nothing
    decisions_frozen: bool = False  # verdicts are reported, nothing is decided
    canary_ceiling: float | None = None  # the canary serves at most this share (0: no canary route)
    control_offset: int = -1  # the last control-topic offset the step applied or recorded
    vote: WeightedVote | None = None  # the portfolio's weights (`model.vote`, `dataflows.train.vote`)
    quarantine: LabelQuarantine | None = None  # whether labels are held back (`dataflows.train.quarantine`)
    held: tuple[Job, ...] = ()  # the jobs the quarantine holds, in order
    bandit: BanditGate | None = None  # with `model.vote.policy: bandit` (`dataflows.train.bandit`)
    format: int = STATE_FORMAT


@dataclass(frozen=True)
class TrainContext:
    """The collaborators the train step is handed."""

    config: FlowConfig
    registry: Registry
    promoter: Promoter
    metrics: Metrics
    clock: Clock
    drain_on_eof: bool = True
    delayed_labels: bool = True
    installed: Decision | None = None  # the group's first champion, decided as the flow was built
    board: ServingBoard | None = None  # where a vote's weights and members' states go (`model.vote`)


def new_group_state(ctx: TrainContext) -> GroupState:
    """A group around the champion that serves now, with a fresh version for each candidate."""
    config, registry = ctx.config, ctx.registry
    serving = ctx.promoter.serving(config.group)
    if serving is None:
        msg = f"group {config.group!r} has no champion: the flow installs one before it starts"
        raise LookupError(msg)
    champion_version, champion = serving
    now_ms = int(ctx.clock() * 1000)
    outbox = [] if ctx.installed is None else [decision_record(ctx.installed)]
    for stale in registry.versions(config.group):  # candidates of a run whose state is gone
        if stale.status in ("candidate", "standby"):
            reason = "the daemon started without this version's recovery state"
            retired = ctx.promoter.retire(config.group, version=stale.id, reason=reason, evidence={}, ts_ms=now_ms)
            outbox.append(decision_record(retired))
    window = config.rolling_window
    slots = {CHAMPION_SLOT: Slot(CHAMPION_SLOT, "champion", LaneState(champion_version, champion, False),
                                 PrequentialScore(window))}  # fmt: skip
    untrained = bool(registry.version(champion_version).config.get("untrained"))
    for spec in config.candidates:
        version, learner = new_candidate(ctx, spec, champion_version, champion, now_ms)
        slots[spec.name] = Slot(
            spec.name, "candidate", LaneState(version, learner, True), PrequentialScore(window), spec,
            new_trial(config, spec, untrained_champion=untrained),
        )  # fmt: skip
    gate = config.gate
    reservoir = Reservoir(gate.golden_reservoir, len(config.schema.features), seed=0) if gate.golden_reservoir else None
    return GroupState(
        name=config.group,
        features=list(config.schema.features),
        classes=list(config.schema.classes),
        slots=slots,
        join=LabelJoin(config.label_window_s, config.max_pending),
        reservoir=reservoir,
        outbox=outbox,
    )


def new_candidate(
    ctx: TrainContext,
    spec: CandidateSpec,
    champion_version: str,
    champion: Learner,
    now_ms: int,
    **described_too: Any,
) -> tuple[str, Learner]:
    """Candidate ``spec``'s first model and its registered version: a fork is a copy of the champion
    (its parent), an alternative its own learner, untrained."""
    config = ctx.config
    if spec.learner is None:
        learner = champion.clone(include_state=True)
        parent: str | None = champion_version
        described: dict[str, Any] = {"fork_of": champion_version}
    else:
        learner = config.build(spec.learner)
        parent = None
        described = spec.learner.described()
    info = ctx.registry.create_version(
        config.group, name=spec.name, parent=parent, learner=learner,
        config=described | {"gate": spec.gate} | described_too,
        ts_ms=now_ms,
    )  # fmt: skip
    return info.id, learner


def decision_record(decision: Decision) -> DecisionRecord:
    """A promoter's decision as the model-events topic carries it."""
    evidence: Mapping[str, Any] = decision.evidence
    return DecisionRecord(
        group=decision.group, action=decision.action, version=decision.version, previous=decision.previous,
        reason=decision.reason, evidence=dict(evidence), ts_ms=decision.ts_ms,
    )  # fmt: skip


class GroupRuntime:
    """A group's training as the flow runs it: its `GroupState`, the collaborators, every slot's
    lane, and what is buffered between writes to the registry. The train step's modules
    (`evidence`, `lifecycle`, `canary`, `live`, `restart`, `reconcile`) work on it."""

    def __init__(self, state: GroupState, ctx: TrainContext) -> None:
        self.state = state
        self.ctx = ctx
        self.lanes: dict[str, Lane] = {
            name: self.open_lane(name, self._loaded(slot.lane)) for name, slot in state.slots.items()
        }
        # The stored states the last few snapshots refer to: Bytewax resumes from the last one it
        # committed, which may be one or two behind the last one made. Older ones are discarded.
        self._stored: collections.deque[set[CheckpointRef]] = collections.deque(maxlen=KEEP_SNAPSHOTS)
        self._saved: dict[str, tuple[Learner, CheckpointRef]] = {}  # frozen models already saved
        # What each version learned since the last write to the registry: written every
        # `lineage_flush_s`, before every decision and snapshot, and at the end (one SQLite
        # transaction per batch and model cost the serving thread milliseconds).
        self.lineage: dict[str, tuple[tuple[OffsetRange, ...], int]] = {}
        self._flushed_at = time.monotonic()
        self.uncopyable: set[str] = set()  # fork versions whose copy for live refresh failed
        self.replays: list[Any] = []  # operators' replays still reading (`dataflows.train.commands`)
        # a vote's jobs: their labels, and the members' answers so far (`dataflows.train.vote`)
        self.vote_labels: dict[int, np.ndarray] = {}
        self.vote_answers: dict[int, dict[str, np.ndarray | None]] = {}
        self.vote_sent: VoteRecord | None = None  # the last vote record sent (`dataflows.train.vote`)
        self.vote_leader: str | None = None  # the member that led the vote at its last `lead` decision
        self.bandit_answers: dict[int, dict[str, np.ndarray | None]] = {}  # arms' correctness by job, until all answer
        # learn what the quarantine holds, each beside a frozen twin (`dataflows.train.quarantine`)
        self.quarantine_probes: list[tuple[Learner, Learner]] = []
        self.released: list[Job] = []  # released by an operator, for the step to hand to the lanes

    def open_lane(self, name: str, state: LaneState) -> Lane:
        """The lane for slot ``name``'s model. The restart model comes and goes with the data:
        dropping a process lane would stop serving for the child's start-up and the copy of its
        model back, so it always learns in a thread."""
        slot = self.state.slots.get(name)
        # A process lane serves (answers serving's questions) as a live fork, or as a vote's member.
        member = self.ctx.config.vote is not None and slot is not None and slot.spec is not None
        return open_lane(
            name, state, self.ctx.config.gate, own_process=name != RESTART_SLOT,
            serves=slot is not None and (member or is_live_fork(self.ctx.config.gate, slot.spec)),
        )  # fmt: skip

    def close_slot(self, name: str) -> Lane:
        """Take slot ``name`` and its lane out of the group: the lane is closed (and returned),
        and the metrics forget the model's gauges (a retired model's last accuracy must not
        linger on the board)."""
        lane = self.lanes.pop(name)
        del self.state.slots[name]
        lane.close()
        self.ctx.metrics.forgot(self.state.name, name)
        return lane

    def flush_lineage(self) -> None:
        """Write what each version learned since the last write to the registry."""
        lineage, self.lineage = self.lineage, {}
        for version, (ranges, samples) in lineage.items():
            self.ctx.registry.record_learning(version, ranges, samples)
        self._flushed_at = time.monotonic()

    def flush_lineage_if_due(self) -> None:
        """`flush_lineage`, once ``lineage_flush_s`` has passed since the last write."""
        if time.monotonic() - self._flushed_at >= self.ctx.config.lineage_flush_s:
            self.flush_lineage()

    def new_trials(self, *, keep_waits: bool = True) -> None:
        """Evidence against the old champion says nothing about the new one. A refused candidate
        still waits its turn, unless ``keep_waits`` is False (then its refusals are forgotten)."""
        self.state.pairing.clear()
        for slot in self.state.slots.values():
            if slot.spec is not None:
                wait = slot.trial.wait if slot.trial is not None and keep_waits else 0
                slot.trial = new_trial(self.ctx.config, slot.spec)
                slot.trial.wait = wait
                if not keep_waits:
                    slot.refusals = 0

    def successor(self, name: str, now_ms: int) -> str:
        """Register the version a slot's model goes on learning as (its current one was decided)."""
        lane = self.lanes[name]
        info = self.ctx.registry.create_version(
            self.state.name, name=name, parent=lane.version, learner=lane.learner,
            config={"continues": lane.version}, ts_ms=now_ms,
        )  # fmt: skip
        return info.id

    def take_outbox(self) -> list[TrainOutput]:
        """The decisions made outside the step (at start, on resume), to emit now."""
        out: list[TrainOutput] = list(self.state.outbox)
        self.state.outbox = []  # a new list: a snapshot may hold the old one
        return out

    def take_snapshot(self) -> GroupState:
        """The group's state as a recovery snapshot holds it."""
        # Bytewax may pickle the snapshot after later batches ran: hand it copies, not live state.
        # Each lane is taken at one instant (its model, queued jobs and uncollected results); the
        # model is saved to the registry's checkpoint store, and the snapshot refers to it.
        self.flush_lineage()
        state = self.state
        lanes = {name: self._store(name) for name in state.slots}
        self._keep({lane.checkpoint for lane in lanes.values()})
        slots = {
            name: dataclasses.replace(
                slot, lane=lanes[name], score=copy.deepcopy(slot.score), trial=copy.deepcopy(slot.trial)
            )
            for name, slot in state.slots.items()
        }
        return dataclasses.replace(
            state, slots=slots, join=state.join.snapshot(), pairing=copy.deepcopy(state.pairing),
            reservoir=copy.deepcopy(state.reservoir), features=list(state.features), classes=list(state.classes),
            outbox=list(state.outbox), change=copy.deepcopy(state.change), vote=copy.deepcopy(state.vote),
            quarantine=copy.deepcopy(state.quarantine), bandit=copy.deepcopy(state.bandit),
            decided=self.ctx.registry.decision_count(state.name),
        )  # fmt: skip

    def close(self) -> None:
        for lane in self.lanes.values():
            lane.close()

    def _loaded(self, lane: LaneState | StoredLane) -> LaneState:
        if isinstance(lane, LaneState):
            return lane
        learner = self.ctx.registry.load_state(lane.checkpoint)
        return LaneState(lane.version, learner, lane.learns, lane.jobs, lane.results, lane.skipped_total)

    def _store(self, name: str) -> StoredLane:
        """A lane as a snapshot keeps it. A model that never learns (champion, standby) is saved
        once and its reference reused while the same model sits in the lane."""
        lane = self.lanes[name]
        last = self._saved.get(name)
        reuse = last[1] if last is not None and last[0] is lane.learner else None
        stored = lane.store(self.ctx.registry.store_state, reuse)
        if not stored.learns:
            self._saved[name] = (lane.learner, stored.checkpoint)
        return stored

    def _keep(self, refs: set[CheckpointRef]) -> None:
        """Remember what the newest snapshot refers to; discard what no kept snapshot does."""
        if len(self._stored) == self._stored.maxlen:
            oldest = self._stored.popleft()
            still = refs.union(*self._stored)
            for ref in oldest - still:
                self.ctx.registry.discard_state(ref)
        self._stored.append(refs)


# A recovery snapshot (pickle) names each class by its module and name: these keep the name they
# had before the package was split (``dataflows.train``, which re-exports them), so that snapshots
# name the same classes before and after, and each release reads the other's.
for _pickled in (Slot, GroupState):
    _pickled.__module__ = "dataflows.train"
