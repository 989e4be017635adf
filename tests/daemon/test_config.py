"""Settings: a YAML file, HEADWATER_* environment overrides, errors that name the field."""

from __future__ import annotations

import importlib.util
import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.config import ConfigError, Settings, load_settings, with_overrides
from dataflows import FeatureSchema, Topics
from dataflows.config import BanditSpec, QuarantineSpec
from learners import LearnerSpec

BASE_YAML = """\
kafka:
  bootstrap_servers: "k1:9092,k2:9092"
  events_topic: my.events
  labels_topic: null
  consumer: {"fetch.min.bytes": 1}
  producer: {"linger.ms": 5}
schema:
  features: [a, b, c]
  classes: [neg, pos]
batching:
  max_size: 64
  max_wait_ms: 7.5
labels:
  window_s: 30
  max_pending: 50
model:
  group: g1
  learner: torch-mlp
  params: {hidden: [8], device: cpu}
  seed: 3
  rolling_window: 100
runtime:
  tail: false
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("HEADWATER_") or name.upper().startswith("SCHEMA"):
            monkeypatch.delenv(name)


def _write(tmp_path: Path, text: str = BASE_YAML) -> Path:
    path = tmp_path / "headwater.yaml"
    path.write_text(text)
    return path


def _error(path: Path | None = None, **data: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, **data)
    return str(info.value)


MINIMAL_SCHEMA = {"features": ["a"], "classes": [0, 1]}


def test_yaml_file_is_read(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path))
    assert s.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert s.kafka.labels_topic is None
    assert s.schema.features == ["a", "b", "c"]
    assert s.schema.classes == ["neg", "pos"]
    assert s.batching.max_size == 64
    assert s.batching.max_wait_ms == 7.5
    assert s.model.params == {"hidden": [8], "device": "cpu"}
    assert s.runtime.tail is False


def test_defaults_apply_where_the_file_is_silent(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path, "schema: {features: [x], classes: [0, 1]}\n"))
    assert s.kafka.events_topic == "headwater.events"
    assert s.batching.max_size == 512
    assert s.labels.window_s == 300.0
    assert s.model.learner == "river-logreg"
    assert s.runtime.recovery_dir is None


def test_env_overrides_nested_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_BATCHING__MAX_SIZE", "7")
    monkeypatch.setenv("HEADWATER_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("HEADWATER_LABELS__WINDOW_S", "12.5")
    monkeypatch.setenv("HEADWATER_RUNTIME__TAIL", "true")
    s = load_settings(_write(tmp_path))
    # env beats file ...
    assert s.batching.max_size == 7
    assert s.kafka.bootstrap_servers == "env:9092"
    assert s.labels.window_s == 12.5
    assert s.runtime.tail is True
    # ... and leaves the file's other fields of the same sections alone
    assert s.batching.max_wait_ms == 7.5
    assert s.kafka.events_topic == "my.events"
    assert s.kafka.consumer == {"fetch.min.bytes": 1}
    assert s.labels.max_pending == 50


def test_env_beats_explicit_data_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_MODEL__SEED", "99")
    s = load_settings(_write(tmp_path), model={"seed": 5, "group": "from-data"})
    assert s.model.seed == 99
    assert s.model.group == "from-data"
    assert s.model.learner == "torch-mlp"  # deep-merged with the file


def test_env_json_for_dict_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_KAFKA__PRODUCER", '{"acks": "1"}')
    s = load_settings(_write(tmp_path))
    assert s.kafka.producer["acks"] == "1"


def test_env_overrides_the_schema_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_SCHEMA__FEATURES", '["x", "y"]')
    s = load_settings(_write(tmp_path))
    assert s.schema.features == ["x", "y"]


def test_unprefixed_schema_variable_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only HEADWATER_* variables may change the settings; an unrelated SCHEMA variable must not.
    monkeypatch.setenv("SCHEMA__FEATURES", '["stray"]')
    s = load_settings(_write(tmp_path))
    assert s.schema.features == ["a", "b", "c"]


def test_env_can_supply_a_section_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_BATCHING__MAX_WAIT_MS", "3")
    s = load_settings(None, schema=MINIMAL_SCHEMA)
    assert s.batching.max_wait_ms == 3.0


def test_bad_env_value_names_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_BATCHING__MAX_SIZE", "0")
    message = _error(_write(tmp_path))
    assert "batching.max_size" in message
    assert str(tmp_path / "headwater.yaml") in message

    monkeypatch.setenv("HEADWATER_BATCHING__MAX_SIZE", "lots")
    assert "batching.max_size" in _error(_write(tmp_path))


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param({"kafka": {"bogus": 1}}, "kafka.bogus", id="unknown-kafka-key"),
        pytest.param({"bogus": 1}, "bogus", id="unknown-section"),
        pytest.param({"batching": {"max_size": -1}}, "batching.max_size", id="batching-max-size"),
        pytest.param({"batching": {"max_wait_ms": 0}}, "batching.max_wait_ms", id="batching-max-wait"),
        pytest.param({"labels": {"window_s": 0}}, "labels.window_s", id="labels-window"),
        pytest.param({"kafka": {"partitions": 0}}, "kafka.partitions", id="kafka-partitions"),
        pytest.param({"runtime": {"workers": "many"}}, "runtime.workers", id="runtime-workers"),
        pytest.param({"model": {"group": ""}}, "model.group", id="model-group"),
    ],
)
def test_errors_name_the_field(data: dict[str, object], field: str) -> None:
    message = _error(None, schema=MINIMAL_SCHEMA, **data)
    assert f"  {field}:" in message


@pytest.mark.parametrize(
    "schema",
    [
        pytest.param(None, id="missing"),
        pytest.param({"features": [], "classes": [0, 1]}, id="no-features"),
        pytest.param({"features": ["a", "a"], "classes": [0, 1]}, id="duplicate-features"),
        pytest.param({"features": ["a"], "classes": [0]}, id="one-class"),
        pytest.param({"features": ["a"], "classes": [0, 0]}, id="duplicate-classes"),
    ],
)
def test_schema_errors_name_schema(schema: dict[str, object] | None) -> None:
    data = {} if schema is None else {"schema": schema}
    message = _error(None, **data)
    assert "  schema" in message
    assert "schema_" not in message


def test_several_errors_are_all_reported() -> None:
    message = _error(None, kafka={"bogus": 1}, batching={"max_size": 0})
    for field in ("kafka.bogus", "batching.max_size", "schema"):
        assert field in message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param("- just\n- a list\n", "must be a mapping", id="not-a-mapping"),
        pytest.param("schema: [unclosed\n", "cannot read config", id="bad-yaml"),
    ],
)
def test_unreadable_files(tmp_path: Path, text: str, needle: str) -> None:
    assert needle in _error(_write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot read config" in _error(tmp_path / "absent.yaml")


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path))
    with pytest.raises(ValueError):
        s.batching.max_size = 3


def test_flow_config_maps_fields(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path))
    assert isinstance(s, Settings)
    config = s.flow_config()
    assert config.brokers == "k1:9092,k2:9092"
    assert config.topics == Topics(
        events="my.events",
        predictions="headwater.predictions",
        dead_letters="headwater.dead-letters",
        model_events="headwater.model-events",
        labels=None,
        serving="headwater.model-events.serving",  # unset: named after the model-events topic
        control="headwater.model-events.control",
        quarantine="headwater.model-events.quarantine",
    )
    assert config.quarantine == QuarantineSpec()  # labels.quarantine is on by default
    assert config.schema == FeatureSchema(["a", "b", "c"], ["neg", "pos"], 64 * 1024)
    assert list(config.schema.features) == ["a", "b", "c"]
    assert config.learner == LearnerSpec("torch-mlp", {"hidden": [8], "device": "cpu"}, 3)
    assert config.group == "g1"
    assert config.batch_max_size == 64
    assert config.batch_max_wait == timedelta(microseconds=7500)
    assert config.label_window_s == 30.0
    assert config.max_pending == 50
    assert config.rolling_window == 100
    assert config.tail is False
    assert config.drain_on_eof is True  # no recovery store: drain at the end
    assert dict(config.consumer_config) == {"fetch.min.bytes": 1}
    assert dict(config.producer_config) == {"linger.ms": 5}


def test_flow_config_keeps_waiting_labels_with_a_recovery_store(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path), runtime={"recovery_dir": str(tmp_path / "rec")})
    assert s.runtime.recovery_dir == tmp_path / "rec"
    assert s.flow_config().drain_on_eof is False


def test_flow_config_adds_runtime_objects(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path))
    stop = threading.Event()
    config = s.flow_config(stop=stop)
    assert config.stop is stop
    assert config.group == "g1"
    # by default, the default portfolio: the champion's fork, a Hoeffding tree and (with PyTorch) an
    # MLP, in shadow, serving as a vote, each in a process of its own
    torch = importlib.util.find_spec("torch") is not None
    assert [c.name for c in config.candidates] == ["fork", "tree", *(["mlp"] if torch else [])]
    assert config.candidates[0].fork and config.candidates[1].learner == LearnerSpec("river-hoeffding")
    assert {c.gate for c in config.candidates} == {"shadow"}
    assert config.vote is not None and config.gate.processes
    assert not config.gate.live_refresh


def test_the_default_portfolio_votes_only_when_nothing_turns_it_off(tmp_path: Path) -> None:
    named = load_settings(
        _write(tmp_path), model={"candidates": [{"name": "fork"}, {"name": "t", "learner": "river-hoeffding"}]}
    )
    assert not named.voting() and named.flow_config().vote is None  # your own candidates: no vote unless asked
    assert load_settings(_write(tmp_path), model={"candidates": [{"name": "fork"}], "vote": {"enabled": True}}).voting()
    refresh = load_settings(_write(tmp_path), promotion={"live_refresh": True})
    assert not refresh.voting() and refresh.flow_config().vote is None
    assert load_settings(_write(tmp_path), model={"learner": "river-hoeffding"}).voting()  # the champion's learner only
    workers = with_overrides(load_settings(_write(tmp_path)), runtime={"workers": 2})
    assert workers.voting(), "an override from the command line keeps the default portfolio"
    dumped = load_settings(None, **load_settings(_write(tmp_path)).model_dump(mode="json"))
    assert dumped.voting(), "a dumped configuration, its default candidates written out, loads the same"


def test_candidates_and_promotion_settings(tmp_path: Path) -> None:
    s = load_settings(
        _write(tmp_path),
        model={"candidates": [{"name": "fast", "learner": "river-logreg", "params": {"lr": 1.0}, "gate": "canary"},
                              {"name": "fork"}]},
        promotion={"min_samples": 50, "canary_steps": [0.1, 0.5]},
    )  # fmt: skip
    config = s.flow_config()
    fast, fork = config.candidates
    assert (fast.name, fast.gate, fast.fork, dict(fast.learner.params) if fast.learner else None) == (
        "fast",
        "canary",
        False,
        {"lr": 1.0},
    )
    assert fork.fork
    assert config.gate.min_samples == 50
    assert config.gate.canary_steps == (0.1, 0.5)


@pytest.mark.parametrize(
    ("section", "value", "field"),
    [
        ("model", {"candidates": [{"name": "a"}, {"name": "a"}]}, "model"),
        ("model", {"candidates": [{"name": "champion"}]}, "model.candidates.0"),
        ("model", {"candidates": [{"name": "x", "gate": "bandit"}]}, "model.candidates.0.gate"),
        ("model", {"candidates": [{"name": "x", "params": {"lr": 1}}]}, "model.candidates.0"),
        ("promotion", {"canary_steps": [0.5, 0.25]}, "promotion"),
        ("promotion", {"alpha": 0.9}, "promotion.alpha"),
        ("promotion", {"min_samples": 500, "probation_samples": 400}, "promotion"),
        ("promotion", {"max_samples": 400, "canary_min_samples": 200}, "promotion"),
        ("model", {"candidates": [{"name": "a", "gate": "canary"}, {"name": "b", "gate": "canary"}]}, "model"),
    ],
)
def test_candidate_and_promotion_errors_name_the_field(
    tmp_path: Path, section: str, value: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigError, match=rf"  {field.replace('.', '[.]')}: "):
        load_settings(_write(tmp_path), **{section: value})


def test_flow_config_overrides_a_mapped_field(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path))
    assert s.runtime.tail is False
    config = s.flow_config(tail=True, batch_max_size=1)
    assert config.tail is True
    assert config.batch_max_size == 1


@pytest.mark.parametrize("classes", ["[no, yes]", "[true, false]"])
def test_yaml_boolean_classes_are_refused(tmp_path: Path, classes: str) -> None:
    # YAML 1.1 reads unquoted no/yes as booleans; they must not silently become classes 0 and 1
    # (the decoder refuses JSON true/false as a class for the same reason).
    path = _write(tmp_path, f"schema: {{features: [a], classes: {classes}}}\n")
    assert "schema.classes" in _error(path)


def test_lanes_auto_puts_candidates_in_processes_only_with_cpus_to_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    two_candidates = {"candidates": [{"name": "fork"}, {"name": "lr", "learner": "river-logreg"}]}
    settings = load_settings(None, schema=MINIMAL_SCHEMA, model=two_candidates)
    assert settings.runtime.lanes == "auto"
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)))
    assert not settings.flow_config().gate.processes  # 2 CPUs: serving, the rest, and none for candidates
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)))
    assert settings.flow_config().gate.processes
    assert not load_settings(None, schema=MINIMAL_SCHEMA, model={"candidates": []}).runtime.lane_processes(0)
    forced = load_settings(None, schema=MINIMAL_SCHEMA, model=two_candidates, runtime={"lanes": "process"})
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)))
    assert forced.flow_config().gate.processes
    assert not load_settings(
        None, schema=MINIMAL_SCHEMA, model=two_candidates, runtime={"lanes": "thread"}
    ).runtime.lane_processes(2)


def test_live_refresh_serves_from_the_lanes_the_machine_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Live refresh serves from a thread lane or a process lane: `lanes` decides as without it."""
    refresh = {"candidates": [{"name": "fork", "gate": "refresh"}]}
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    live = load_settings(None, schema=MINIMAL_SCHEMA, model=refresh, promotion={"live_refresh": True})
    assert live.flow_config().gate.live_refresh
    assert live.flow_config().gate.processes  # auto, with CPUs to spare
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)))
    assert not live.flow_config().gate.processes  # auto, without
    threads = load_settings(
        None, schema=MINIMAL_SCHEMA, model=refresh, promotion={"live_refresh": True}, runtime={"lanes": "thread"}
    )
    assert not threads.flow_config().gate.processes


def test_the_kafka_security_block_reaches_every_client_and_secrets_come_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    s = load_settings(
        _write(tmp_path),
        kafka={"security": {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "hw"},
               "security_files": {"sasl.password": str(secret)}, "consumer": {"fetch.min.bytes": 1},
               "replication_factor": 3},
    )  # fmt: skip
    shared = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "hw",
              "sasl.password": "s3cret"}  # fmt: skip
    assert s.kafka_config("admin") == shared
    assert s.kafka_config("consumer") == shared | {"fetch.min.bytes": 1}
    config = s.flow_config()
    assert dict(config.consumer_config) == shared | {"fetch.min.bytes": 1}
    assert dict(config.producer_config) == shared | dict(s.kafka.producer)
    assert s.kafka.replication_factor == 3
    assert "s3cret" not in str(s.model_dump(mode="json"))  # the config holds the file's path, not the secret


def test_an_unreadable_security_file_is_a_clear_error(tmp_path: Path) -> None:
    s = load_settings(_write(tmp_path), kafka={"security_files": {"sasl.password": str(tmp_path / "absent")}})
    with pytest.raises(ConfigError, match=r"kafka.security_files.sasl.password: cannot read .*absent"):
        s.flow_config()


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        pytest.param({"model": {"vote": {"enabled": True}, "candidates": []}}, "needs one or more candidates",
                     id="no-members"),
        pytest.param({"model": {"vote": {"enabled": True}}, "promotion": {"live_refresh": True}},
                     "turn promotion.live_refresh off", id="with-live-refresh"),
        pytest.param({"model": {"vote": {"enabled": True, "share": 1.0}}}, "model.vote.share", id="share"),
        pytest.param({"model": {"vote": {"enabled": True, "policy": "bandit", "bandit": {"floor": 0.6}},
                                "candidates": [{"name": "a"}, {"name": "b", "learner": "river-hoeffding"}]}},
                     "vote.bandit.floor 0.6 for each of 2 candidates", id="bandit-floor"),
        pytest.param({"model": {"vote": {"enabled": True, "policy": "greedy"}}}, "model.vote.policy", id="policy"),
    ],
)  # fmt: skip
def test_a_vote_it_cannot_serve_is_refused(data: dict[str, object], needle: str) -> None:
    assert needle in _error(None, schema=MINIMAL_SCHEMA, **data)


def test_a_vote_reaches_the_flow_in_thread_or_process_lanes() -> None:
    on = load_settings(None, schema=MINIMAL_SCHEMA, model={"vote": {"enabled": True, "eta": 0.8}},
                       runtime={"lanes": "thread"})  # fmt: skip
    assert not on.lane_processes()
    config = on.flow_config()
    assert config.vote is not None and config.vote.eta == 0.8 and not config.gate.processes
    apart = load_settings(None, schema=MINIMAL_SCHEMA, model={"vote": {"enabled": True}}, runtime={"lanes": "process"})
    assert apart.lane_processes() and apart.flow_config().gate.processes
    auto = load_settings(None, schema=MINIMAL_SCHEMA, model={"vote": {"enabled": True}}, runtime={"lanes": "auto"})
    assert auto.lane_processes(), "auto: a vote's members learn and serve in processes, whatever the CPUs"
    alone = load_settings(None, schema=MINIMAL_SCHEMA, model={"candidates": [{"name": "fork"}]})
    assert alone.flow_config().vote is None
    assert config.vote.bandit is None  # the weighted vote serves by default
    bandit = (
        load_settings(
            None,
            schema=MINIMAL_SCHEMA,
            model={"vote": {"enabled": True, "policy": "bandit", "bandit": {"allocation": "ucb", "ceiling": 0.3}}},
        )
        .flow_config()
        .vote
    )
    assert bandit is not None and bandit.bandit == BanditSpec(allocation="ucb", ceiling=0.3)
