"""Headwater's settings: a YAML file, overridden by ``HEADWATER_*`` environment variables.

Nested fields use ``__`` in the variable name, e.g. ``HEADWATER_KAFKA__BOOTSTRAP_SERVERS`` or
``HEADWATER_BATCHING__MAX_SIZE``. Settings are validated once at start-up; an error names the
field. The resulting object is frozen and passed down — there is no module-level instance.
"""

from __future__ import annotations

import re
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from daemon.model_settings import ModelSettings
from daemon.sections import (
    AdminSettings,
    BatchingSettings,
    KafkaSettings,
    LabelSettings,
    PromotionSettings,
    RegistrySettings,
    RuntimeSettings,
    SchemaSettings,
)
from dataflows import FlowConfig, Topics
from learners import LearnerSpec

__all__ = ["ConfigError", "Settings", "load_settings", "mask_secrets", "with_overrides"]


class ConfigError(ValueError):
    """The configuration is invalid; the message names each offending field."""


# The section is called `schema`, which shadows BaseModel.schema() (a deprecated alias of
# model_json_schema()). An alias would dodge the warning but lose the HEADWATER_ prefix for that
# section's environment variables, so the name stays and this one warning is silenced.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class Settings(BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix="HEADWATER_", env_nested_delimiter="__", extra="forbid", frozen=True
        )

        kafka: KafkaSettings = Field(default_factory=KafkaSettings)  # type: ignore[arg-type]
        schema: SchemaSettings  # type: ignore[assignment]
        batching: BatchingSettings = Field(default_factory=BatchingSettings)  # type: ignore[arg-type]
        labels: LabelSettings = Field(default_factory=LabelSettings)  # type: ignore[arg-type]
        model: ModelSettings = Field(default_factory=ModelSettings)  # type: ignore[arg-type]
        promotion: PromotionSettings = Field(default_factory=PromotionSettings)  # type: ignore[arg-type]
        registry: RegistrySettings = Field(default_factory=RegistrySettings)  # type: ignore[arg-type]
        runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)  # type: ignore[arg-type]
        admin: AdminSettings = Field(default_factory=AdminSettings)  # type: ignore[arg-type]

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # The environment overrides the file (which arrives as init kwargs).
            return env_settings, init_settings, file_secret_settings

        @model_validator(mode="after")
        def _vote_in_threads(self) -> Self:
            if self.model.vote.enabled is True and self.promotion.live_refresh:
                msg = "model.vote serves its members' latest states itself: turn promotion.live_refresh off"
                raise ValueError(msg)
            return self

        def voting(self) -> bool:
            """Whether the candidates serve as a vote (`ModelSettings.voting`, with this live refresh)."""
            return self.model.voting(live_refresh=self.promotion.live_refresh)

        def lane_processes(self) -> bool:
            """Whether candidates learn in processes (`RuntimeSettings.lanes`): a vote's members then
            serve from their processes, asked over a pipe (`dataflows.lanes.ask`). ``auto`` with a
            vote: processes, whatever the CPUs — members in threads share the serving GIL, and one
            that cannot keep up serves an old state (RBF at 1,000 events/s on 2 CPUs, torch-mlp's
            lane 7 batches behind: the vote 8.4 points below the best member alone; in processes
            0.5 below, `bench/results/quality.md`)."""
            if self.voting() and self.runtime.lanes == "auto":
                return True
            return self.runtime.lane_processes(len(self.model.candidates))

        def topics(self) -> Topics:
            k = self.kafka
            serving = k.serving_topic or f"{k.model_events_topic}.serving"
            control = k.control_topic or f"{k.model_events_topic}.control"
            quarantine = (
                (k.quarantine_topic or f"{k.model_events_topic}.quarantine") if self.labels.quarantine.enabled else None
            )
            return Topics(k.events_topic, k.predictions_topic, k.dead_letter_topic, k.model_events_topic,
                          k.labels_topic, serving, control, quarantine)  # fmt: skip

        def kafka_config(self, client: str = "admin") -> dict[str, Any]:
            """librdkafka settings for one kind of client (``consumer``, ``producer``, ``admin``):
            the security block every client shares (its files read), then that kind's own."""
            try:
                shared = self.kafka.client_config()
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            own = {"consumer": self.kafka.consumer, "producer": self.kafka.producer}.get(client, {})
            return {**shared, **own}

        def flow_config(self, **overrides: Any) -> FlowConfig:
            fields: dict[str, Any] = dict(
                brokers=self.kafka.bootstrap_servers,
                topics=self.topics(),
                schema=self.schema.feature_schema(),
                learner=LearnerSpec(self.model.learner, self.model.params, self.model.seed),
                group=self.model.group,
                candidates=tuple(c.spec() for c in self.model.candidates),
                gate=self.promotion.gate(
                    threaded=self.runtime.train_threads,
                    processes=self.lane_processes(),
                ),
                batch_max_size=self.batching.max_size,
                batch_max_wait=timedelta(milliseconds=self.batching.max_wait_ms),
                label_window_s=self.labels.window_s,
                max_pending=self.labels.max_pending,
                rolling_window=self.model.rolling_window,
                tail=self.runtime.tail,
                # Without a recovery store nothing carries waiting labels past the end: dead-letter them.
                drain_on_eof=self.runtime.recovery_dir is None,
                recovery=self.runtime.recovery_dir is not None,
                consumer_config=self.kafka_config("consumer"),
                producer_config=self.kafka_config("producer"),
                command_ttl_s=self.admin.command_ttl_s,
                vote=self.model.vote.spec() if self.voting() else None,
                quarantine=self.labels.quarantine.spec(),
            )
            return FlowConfig(**(fields | overrides))


_SECRET_KEY = re.compile(
    r"password|secret|token|credential|(^|[._])key$|pem|sasl\.oauthbearer\.config|sasl\.jaas", re.IGNORECASE
)


def mask_secrets(data: Any) -> Any:
    """A copy of ``data`` with the values of secret-looking keys (``sasl.password``,
    ``ssl.key.password``, ``sasl.oauthbearer.client.secret``...) replaced by ``"***"``."""
    if isinstance(data, dict):
        return {k: "***" if _SECRET_KEY.search(str(k)) else mask_secrets(v) for k, v in data.items()}
    if isinstance(data, list):
        return [mask_secrets(v) for v in data]
    return data


def with_overrides(settings: Settings, **sections: dict[str, Any]) -> Settings:
    """``settings`` with ``sections`` (e.g. command-line options) merged over it: these win over the
    file *and* the environment, which is what an operator typing a flag expects."""
    update: dict[str, Any] = {}
    for name, values in sections.items():
        current = getattr(settings, name)
        try:
            update[name] = type(current).model_validate(_deep_merge(current.model_dump(), values))
        except ValidationError as exc:
            lines = [f"  {name}.{_field(e['loc'])}: {e['msg']}" for e in exc.errors()]
            raise ConfigError("invalid configuration on the command line:\n" + "\n".join(lines)) from None
    return settings.model_copy(update=update)


def load_settings(path: Path | None = None, **data: Any) -> Settings:
    """Read the YAML file (if any), merge ``data`` over it, apply the environment, validate."""
    raw: dict[str, Any] = {}
    where = str(path) if path else "settings"
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            msg = f"cannot read config {path}: {exc}"
            raise ConfigError(msg) from exc
        if loaded is not None and not isinstance(loaded, dict):
            msg = f"{path}: the top level must be a mapping, got {type(loaded).__name__}"
            raise ConfigError(msg)
        raw = loaded or {}
    raw = _deep_merge(raw, data)
    try:
        return Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, where)) from None


def _describe(exc: ValidationError, where: str) -> str:
    lines = [f"  {_field(e['loc'])}: {e['msg']}" for e in exc.errors()]
    return f"invalid configuration in {where}:\n" + "\n".join(lines)


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
