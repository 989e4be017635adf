"""The sections of Headwater's settings (`daemon.config.Settings`), each a frozen pydantic model
that forbids unknown keys: an error names the field. The model section (the champion, the
candidates, the default portfolio and its vote) is `daemon.model_settings`."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictInt, StrictStr, model_validator

from dataflows import FeatureSchema, GateSpec
from dataflows.config import QuarantineSpec

__all__ = [
    "AdminSettings",
    "BatchingSettings",
    "KafkaSettings",
    "LabelSettings",
    "PromotionSettings",
    "RegistrySettings",
    "RuntimeSettings",
    "SchemaSettings",
]

LibrdkafkaValue = str | int | float | bool


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port...] of the brokers")
    events_topic: str = "headwater.events"
    labels_topic: str | None = Field("headwater.labels", description="delayed labels; null if labels are inline")
    predictions_topic: str = "headwater.predictions"
    dead_letter_topic: str = "headwater.dead-letters"
    model_events_topic: str = "headwater.model-events"
    serving_topic: str | None = Field(None, description="serving-table changes; unset: <model_events_topic>.serving")
    control_topic: str | None = Field(
        None, description="operators' commands (one partition); unset: <model_events_topic>.control"
    )
    quarantine_topic: str | None = Field(
        None, description="labels held back as suspect (labels.quarantine); unset: <model_events_topic>.quarantine"
    )
    partitions: int = Field(4, ge=1, description="partitions for topics that `headwater topics create` makes")
    replication_factor: int = Field(1, ge=1, description="replicas of each topic Headwater creates")
    security: dict[str, LibrdkafkaValue] = Field(
        default_factory=dict,
        description="librdkafka settings every client takes (consumers, producers, admin): security.protocol, "
        "sasl.mechanism, sasl.username, ssl.ca.location...; secrets belong in security_files",
    )
    security_files: dict[str, Path] = Field(
        default_factory=dict,
        description="librdkafka settings read from files at start (a mounted Secret), e.g. sasl.password: "
        "/etc/headwater/kafka/password; never written in the config",
    )
    consumer: dict[str, LibrdkafkaValue] = Field(default_factory=dict, description="extra librdkafka settings")
    producer: dict[str, LibrdkafkaValue] = Field(default_factory=dict, description="extra librdkafka settings")

    def client_config(self) -> dict[str, LibrdkafkaValue]:
        """What every Kafka client of the daemon takes: ``security``, and ``security_files`` read."""
        read: dict[str, LibrdkafkaValue] = {}
        for key, path in self.security_files.items():
            try:
                read[key] = path.read_text().strip()
            except OSError as exc:
                msg = f"kafka.security_files.{key}: cannot read {path} ({exc.strerror})"
                raise ValueError(msg) from None
        return {**self.security, **read}

    @model_validator(mode="after")
    def _distinct_topics(self) -> Self:
        given = [n for n in (self.events_topic, self.labels_topic, self.predictions_topic, self.dead_letter_topic,
                             self.model_events_topic, self.serving_topic, self.control_topic, self.quarantine_topic)
                 if n is not None]  # fmt: skip
        if len(set(given)) != len(given):
            msg = f"every topic needs its own name (an output that is also an input would be read back): {given}"
            raise ValueError(msg)
        return self


class SchemaSettings(_Section):
    features: list[str] = Field(min_length=1, description="feature names, in the order the model sees them")
    classes: list[StrictInt | StrictStr] = Field(min_length=2, description="the labels the model may be taught")
    # Capped so that a dead letter (base64 of the original, ~4/3 of it) stays under Kafka's 1 MB default.
    max_event_bytes: int = Field(64 * 1024, ge=16, le=512 * 1024)
    max_abs_feature: float = Field(1e9, gt=0, description="larger feature magnitudes are dead-lettered")
    categories: dict[str, list[StrictInt | StrictStr]] = Field(
        default_factory=dict, description="categorical features and their values; every other feature is a number"
    )

    @model_validator(mode="after")
    def _valid_schema(self) -> Self:
        self.feature_schema()  # FeatureSchema checks names and classes; its ValueError names the problem
        return self

    def feature_schema(self) -> FeatureSchema:
        return FeatureSchema(
            self.features, self.classes, self.max_event_bytes, self.max_abs_feature, dict(self.categories)
        )


class BatchingSettings(_Section):
    # Serving takes what a partition's poll gives; training jobs gather (at 5 ms a MOA forest fell behind).
    max_size: int = Field(512, ge=1, description="messages a poll of a partition serves; records per training job")
    max_wait_ms: float = Field(20.0, gt=0, description="how long a training job waits to fill (serving never waits)")


class QuarantineSettings(_Section):
    """Suspect labels held back before anything learns them (`evaluators.LabelQuarantine`): a spike in
    serving's error, or a shift in the labels' classes, against what was learned before. Held labels go
    to the quarantine topic; they are dropped when the signal clears, learned when a copy of what serves
    shows they are learnable (a change in the data), after max_hold, or when an operator releases them."""

    enabled: bool = Field(True, description="hold suspect labels back")
    window: int = Field(300, ge=10, description="labelled examples the signal is read on")
    margin: float = Field(0.15, gt=0, lt=1, description="served error above what it was that is a spike")
    shift: float = Field(0.25, gt=0, lt=1, description="a class's share of the labels moving this much is a shift")
    delta: float = Field(1e-3, gt=0, lt=1, description="confidence of the bounds (smaller: fewer false alarms)")
    warmup: int = Field(1000, ge=10, description="labelled examples learned before anything is judged")
    max_hold: int = Field(5000, ge=10, description="labelled examples held at most; then they are learned")
    probe: bool = Field(
        True, description="copies of the candidates learn the held labels: learnable or already known ones are released"
    )
    probe_window: int = Field(
        100, ge=10, description="held labels a probe must beat its twin (or a twin serving) on to release them"
    )

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if self.warmup < self.window or self.max_hold < self.window:
            msg = f"labels.quarantine: warmup and max_hold must be at least the window ({self.window})"
            raise ValueError(msg)
        return self

    def spec(self) -> QuarantineSpec | None:
        if not self.enabled:
            return None
        return QuarantineSpec(self.window, self.margin, self.shift, self.delta, self.warmup, self.max_hold, self.probe,
                              self.probe_window)  # fmt: skip


class LabelSettings(_Section):
    window_s: float = Field(300.0, gt=0, description="how long features wait for a delayed label, and vice versa")
    max_pending: int = Field(100_000, ge=1, description="bound on waiting features (and on waiting labels)")
    quarantine: QuarantineSettings = Field(default_factory=QuarantineSettings)  # type: ignore[arg-type]


class PromotionSettings(_Section):
    """When a candidate replaces the champion, and when a new champion is rolled back."""

    alpha: float = Field(0.05, gt=0, le=0.5, description="bound on the false-promotion rate of one trial")
    min_samples: int = Field(300, ge=10, description="paired labelled examples before a shadow verdict")
    min_improvement: float = Field(0.0, ge=0, lt=1, description="accuracy a candidate must gain at least")
    max_samples: int = Field(5000, ge=10, description="a trial without a conclusion by then starts over")
    retry_after: int = Field(
        2000, ge=0, description="labelled examples a refused candidate learns before a new trial; doubles per refusal"
    )
    canary_steps: list[float] = Field([0.05, 0.25, 0.5], min_length=1, description="shares of keys, in order")
    canary_min_samples: int = Field(200, ge=1, description="canary-served labelled examples per step")
    probation_samples: int = Field(2000, ge=10, description="a new champion's probation against its predecessor")
    rollback_margin: float = Field(0.02, ge=0, lt=1, description="how much worse than its predecessor it may be")
    golden_path: Path | None = Field(None, description="JSON lines of labelled events: the golden set")
    golden_reservoir: int = Field(0, ge=0, description=">0: a reservoir of trusted history as the golden set")
    golden_tolerance: float = Field(0.02, ge=0, lt=1, description="regression allowed on the golden set")
    refresh_samples: int = Field(1000, ge=10, description="paired labelled examples before a refresh")
    refresh_margin: float = Field(0.005, ge=0, lt=1, description="how much worse than the champion a refresh may be")
    live_refresh: bool = Field(
        False,
        description="a refresh fork's latest state serves between its promotions while its trial shows it not "
        "worse (from a process lane, serving asks the fork's process; see docs/architecture.md)",
    )
    live_refresh_budget: float = Field(
        0.2,
        gt=0,
        le=1,
        description="share of the fork's lane time that copying its model for serving may take, when a copy costs "
        "more than learning the batch twice (cheaper copies come after every batch)",
    )
    live_refresh_wait_ms: float = Field(
        50.0, ge=0, le=10_000,
        description="thread lane: how long a micro-batch waits, after its labels are handed out, for the live fork "
        "to learn them and hand its state to serving, so the next micro-batch is served by a model that learned "
        "every label before it (0: never wait); process lane: how long serving waits for the fork's process to "
        "answer a micro-batch before the champion serves it (and for a vote member's, before it sits the batch out)",
    )  # fmt: skip
    restart_on_drift: bool = Field(
        False,
        description="when the champion's accuracy drops (a drift verdict), an untrained model of its configuration "
        "starts learning from the change on, and replaces the champion once significantly better",
    )
    max_lag_batches: int = Field(64, ge=1, description="a model further behind skips its oldest batches")
    max_lag_s: float = Field(10.0, gt=0, description="so does a model whose oldest waiting batch is older than this")

    @model_validator(mode="after")
    def _steps(self) -> Self:
        steps = self.canary_steps
        if any(not 0 < s <= 1 for s in steps) or any(b <= a for a, b in itertools.pairwise(steps)):
            msg = f"canary_steps must increase strictly within (0, 1]: {steps}"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _sample_sizes(self) -> Self:
        # The evaluators refuse these combinations when a trial starts: say so at start-up instead.
        canary_total = self.canary_min_samples * len(self.canary_steps)
        if self.max_samples < max(self.min_samples, canary_total):
            msg = (f"max_samples ({self.max_samples}) must be at least min_samples ({self.min_samples}) and "
                   f"canary_min_samples x the canary steps ({canary_total})")  # fmt: skip
            raise ValueError(msg)
        if self.probation_samples < self.min_samples:
            msg = f"probation_samples ({self.probation_samples}) must be at least min_samples ({self.min_samples})"
            raise ValueError(msg)
        return self

    def gate(self, *, threaded: bool = True, processes: bool = False) -> GateSpec:
        return GateSpec(
            alpha=self.alpha, min_samples=self.min_samples, min_improvement=self.min_improvement,
            max_samples=self.max_samples, retry_after=self.retry_after, canary_steps=tuple(self.canary_steps),
            canary_min_samples=self.canary_min_samples, probation_samples=self.probation_samples,
            rollback_margin=self.rollback_margin, golden_tolerance=self.golden_tolerance,
            golden_reservoir=self.golden_reservoir, refresh_samples=self.refresh_samples,
            refresh_margin=self.refresh_margin, live_refresh=self.live_refresh,
            live_refresh_budget=self.live_refresh_budget, live_refresh_wait_ms=self.live_refresh_wait_ms,
            restart_on_drift=self.restart_on_drift, max_lag_batches=self.max_lag_batches,
            max_lag_s=self.max_lag_s, threaded=threaded, processes=processes,
        )  # fmt: skip


class RegistrySettings(_Section):
    path: Path = Field(Path("headwater-registry"), description="directory of the registry (SQLite + checkpoints)")


class RuntimeSettings(_Section):
    workers: int = Field(1, ge=1, description="Bytewax worker threads in this process")
    tail: bool = Field(True, description="keep waiting for new events; false: stop at the end of the topics")
    torch_threads: int = Field(1, ge=1)
    train_threads: bool = Field(True, description="each model learns on its own thread (false: inline)")
    lanes: Literal["auto", "thread", "process"] = Field(
        "auto",
        description=(
            "process: each candidate learns in a process of its own, off the serving GIL and below serving "
            "on the CPU (SCHED_IDLE), so serving latency stays flat but candidates learn only on spare CPU "
            "(a live refresh fork's process runs at normal priority: serving asks it, within "
            "live_refresh_wait_ms); "
            "thread: in threads of the serving process, sharing its GIL fairly; auto: process with a vote "
            "(its members serve from their processes, at normal priority) or when the machine has a CPU for "
            "serving, one for the rest and one per candidate, else thread"
        ),
    )

    def lane_processes(self, candidates: int) -> bool:
        """Whether candidates learn in processes (`lanes`, with ``auto`` resolved on this machine)."""
        if self.lanes != "auto":
            return self.lanes == "process"
        return candidates > 0 and len(os.sched_getaffinity(0)) >= 2 + candidates

    recovery_dir: Path | None = Field(None, description="Bytewax recovery store; unset: no recovery")
    recovery_partitions: int = Field(8, ge=1, description="at least the most workers you will ever run")
    snapshot_interval_s: float = Field(10.0, gt=0)


class AdminSettings(_Section):
    """The admin API (`daemon.api`): health, readiness, metrics, reads, and commands."""

    enabled: bool = Field(True, description="serve the admin API inside `headwater run`")
    host: str = Field("0.0.0.0", description="address the admin API listens on")  # noqa: S104 (a pod's port)
    port: int = Field(8080, ge=0, le=65535, description="its port (0: any free port, logged at start)")
    token: SecretStr | None = Field(None, description="bearer token for mutations (prefer token_file)")
    token_file: Path | None = Field(None, description="file holding the bearer token (a mounted Secret)")
    command_ttl_s: float = Field(3600.0, gt=0, description="a command older than this when it is read is expired")

    @model_validator(mode="after")
    def _one_token(self) -> Self:
        if self.token is not None and self.token_file is not None:
            msg = "give the admin token either inline (token) or as a file (token_file), not both"
            raise ValueError(msg)
        return self

    def bearer_token(self) -> str | None:
        """The token mutations need, read from ``token_file`` or ``token``; None: read-only API."""
        if self.token_file is not None:
            try:
                text = self.token_file.read_text().strip()
            except OSError as exc:
                msg = f"admin.token_file {self.token_file}: cannot read it ({exc.strerror})"
                raise ValueError(msg) from None
            if not text:
                msg = f"admin.token_file {self.token_file} is empty"
                raise ValueError(msg)
            return text
        return self.token.get_secret_value() if self.token is not None and self.token.get_secret_value() else None
