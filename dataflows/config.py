"""What the flow is configured with: data only, already validated (the daemon builds it from its settings)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from dataflows.decode import FeatureSchema
from evaluators.quarantine import LabelQuarantine
from learners import Learner, LearnerSpec, build_learner

__all__ = ["BanditSpec", "CandidateSpec", "FlowConfig", "GateSpec", "GoldenSet", "QuarantineSpec", "Topics", "VoteSpec"]


@dataclass(frozen=True)
class Topics:
    events: str
    predictions: str
    dead_letters: str
    model_events: str
    labels: str | None = None
    serving: str | None = None  # the serving-table topic (`daemon.serving_log`): compacted, one partition
    control: str | None = None  # operators' commands (`dataflows.control`): one partition
    quarantine: str | None = None  # labels held back as suspect (None: on the model-events topic)

    def inputs(self) -> list[str]:
        return [self.events] + ([self.labels] if self.labels else [])

    def all(self) -> list[str]:
        """The topics with as many partitions as the input (the serving-table topic has one)."""
        quarantine = [self.quarantine] if self.quarantine else []
        return [*self.inputs(), self.predictions, self.dead_letters, self.model_events, *quarantine]


@dataclass(frozen=True)
class CandidateSpec:
    """A model that learns beside the champion and may replace it.

    ``learner`` None means a *fork*: a clone of the champion with its state, forked again from
    each new champion. Otherwise it is a configured alternative (another learning rate,
    architecture or framework). ``gate`` is how it earns promotion: ``shadow`` (scored on all
    traffic, never served, promoted when significantly better), ``canary`` (serves a sticky share
    of keys, raised in steps) or, for a fork only, ``refresh`` (replaces the champion as soon as it
    is not worse: `evaluators.RefreshEvaluator`).
    """

    name: str
    learner: LearnerSpec | None = None
    gate: str = "shadow"

    def __post_init__(self) -> None:
        if self.gate not in ("shadow", "canary", "refresh"):
            msg = f"candidate {self.name!r}: gate must be 'shadow', 'canary' or 'refresh', not {self.gate!r}"
            raise ValueError(msg)
        if self.gate == "refresh" and self.learner is not None:
            msg = f"candidate {self.name!r}: gate 'refresh' is for forks, the champion's own model learning on"
            raise ValueError(msg)
        if self.name in ("champion", "standby"):
            msg = f"candidate name {self.name!r} is reserved"
            raise ValueError(msg)

    @property
    def fork(self) -> bool:
        return self.learner is None


@dataclass(frozen=True)
class GateSpec:
    """How evidence turns into decisions (see `evaluators`)."""

    alpha: float = 0.05  # bound on the false-promotion rate of one trial
    min_samples: int = 300  # paired labelled examples before a shadow verdict
    min_improvement: float = 0.0  # accuracy a candidate must gain, at least, to be promoted
    max_samples: int = 5000  # a trial without a conclusion by then starts over
    retry_after: int = 2000  # labelled examples a refused candidate learns before its next trial (doubling)
    canary_steps: tuple[float, ...] = (0.05, 0.25, 0.5)
    canary_min_samples: int = 200  # canary-served labelled examples per step
    probation_samples: int = 2000  # a new champion's probation against its predecessor
    rollback_margin: float = 0.02  # how much worse than its predecessor a new champion may be
    golden_tolerance: float = 0.02
    golden_reservoir: int = 0  # >0: a reservoir of trusted history, frozen at each promotion
    refresh_samples: int = 1000  # paired labelled examples before a refresh fork may replace the champion
    refresh_margin: float = 0.005  # how much worse than the champion it may be
    live_refresh: bool = False  # a refresh fork's latest state serves between its promotions
    live_refresh_budget: float = 0.2  # share of the lane's time for copies dearer than learning a batch twice
    live_refresh_wait_ms: float = 50.0  # a batch waits this long at most for the live fork to learn it (thread
    # lane), or for its process to answer (process lane)
    restart_on_drift: bool = False  # an untrained model starts learning when the champion's accuracy drops
    max_lag_batches: int = 64  # a model further behind than this skips its oldest batches
    max_lag_s: float = 10.0  # ... and so does a model whose oldest waiting batch is older than this
    threaded: bool = True  # models learn on their own threads (False: inline, for tests)
    processes: bool = False  # candidates learn in processes of their own (off the serving process's GIL)


@dataclass(frozen=True)
class GoldenSet:
    """A frozen reference set: no candidate may regress on it beyond the tolerance."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]
    source: str = "file"

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.shape != (len(self.x),):
            msg = f"golden set: x of shape {self.x.shape} and y of shape {self.y.shape} do not fit"
            raise ValueError(msg)


@dataclass(frozen=True)
class BanditSpec:
    """The portfolio served one member per event (`evaluators.BanditGate`, `dataflows.train.bandit`)."""

    allocation: str = "thompson"  # or "ucb"
    ceiling: float = 0.5  # the members' shares of the keys together, at most (the champion serves the rest)
    floor: float = 0.05  # each member's least part of that
    threshold: float = 0.95  # probability of being the best arm that promotes a member ...
    discount: float = 0.999  # per label, for the arms' posteriors
    min_samples: int = 300  # ... after this many labels, if its always-valid difference with the champion is > 0
    max_samples: int = 20_000  # then the gate starts over


@dataclass(frozen=True)
class VoteSpec:
    """The portfolio's weighted vote (`evaluators.WeightedVote`): the candidates serve together; with
    ``bandit``, one of them per event instead, on a share of the keys (`BanditSpec`)."""

    eta: float = 0.5  # how fast weight moves to the members that are right
    share: float = 0.002  # the part of the weight spread evenly after each example (fixed share)
    fade: float = 0.995  # per example, for the recent accuracies the guard compares
    bandit: BanditSpec | None = None  # serve one member per event, and promote the clearly best


@dataclass(frozen=True)
class QuarantineSpec:
    """When labels are held back as suspect (`evaluators.LabelQuarantine`, `dataflows.train.quarantine`)."""

    window: int = 300  # labelled examples the signal is read on
    margin: float = 0.15  # served error above the reference that is a spike
    shift: float = 0.25  # a class's share moving this much is a label shift
    delta: float = 1e-3  # confidence of the bounds
    warmup: int = 1000  # labelled examples learned before anything is judged
    max_hold: int = 5000  # labelled examples held at most before they are learned
    probe: bool = True  # copies of the candidates learn the held labels: learnable ones are released
    probe_window: int = 100  # held labels a probe must beat serving on

    def build(self, n_classes: int) -> LabelQuarantine:
        return LabelQuarantine(n_classes, window=self.window, margin=self.margin, shift=self.shift, delta=self.delta,
                               warmup=self.warmup, max_hold=self.max_hold, probe_window=self.probe_window)  # fmt: skip


@dataclass(frozen=True)
class FlowConfig:
    """What the flow needs, already validated (the daemon builds it from its settings)."""

    brokers: str
    topics: Topics
    schema: FeatureSchema
    learner: LearnerSpec
    group: str = "default"
    candidates: tuple[CandidateSpec, ...] = (CandidateSpec("fork"),)
    gate: GateSpec = field(default_factory=GateSpec)
    golden: GoldenSet | None = None
    batch_max_size: int = 512
    batch_max_wait: timedelta = timedelta(milliseconds=20)
    label_window_s: float = 300.0
    max_pending: int = 100_000
    rolling_window: int = 1000
    tail: bool = True
    drain_on_eof: bool = True
    recovery: bool = False  # a recovery store keeps Bytewax's snapshots (else they are not worth making)
    lineage_flush_s: float = 1.0  # how often what each version learned is written to the registry
    command_ttl_s: float = 3600.0  # an operator's command older than this when the train step reads it: expired
    vote: VoteSpec | None = None  # the candidates serve a weighted vote on the champion's route
    quarantine: QuarantineSpec | None = None  # suspect labels are held back (None: every label is learned)
    consumer_config: Mapping[str, Any] = field(default_factory=dict)
    producer_config: Mapping[str, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        names = [c.name for c in self.candidates]
        if len(set(names)) != len(names):
            msg = f"candidate names must be unique: {names}"
            raise ValueError(msg)
        if sum(c.gate == "canary" for c in self.candidates) > 1:
            msg = f"at most one canary candidate per group: {names}"
            raise ValueError(msg)
        if "restart" in names:  # the slot of `promotion.restart_on_drift`'s model
            msg = "candidate name 'restart' is reserved"
            raise ValueError(msg)
        if self.vote is not None and not self.candidates:
            msg = "a vote needs one or more candidates: they are its members"
            raise ValueError(msg)
        if self.vote is not None and self.gate.live_refresh:
            msg = "a vote serves its members' latest states itself: turn promotion.live_refresh off"
            raise ValueError(msg)
        g = self.gate
        if g.max_samples < max(g.min_samples, g.canary_min_samples * len(g.canary_steps)):
            msg = f"gate sample sizes do not fit together: {g}"
            raise ValueError(msg)

    def build(self, spec: LearnerSpec | None = None) -> Learner:
        """``spec`` (default: the champion's, ``learner``) built, untrained, for this schema."""
        schema = self.schema
        return build_learner(
            spec if spec is not None else self.learner, n_features=len(schema.features),
            n_classes=len(schema.classes), feature_names=schema.features, categories=schema.categories,
        )  # fmt: skip
