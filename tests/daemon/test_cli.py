"""The command line: clear errors that name the field, and no secrets printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from daemon.cli import app
from daemon.config import ConfigError, load_settings, mask_secrets, with_overrides

runner = CliRunner()

GOOD = """
kafka:
  bootstrap_servers: 127.0.0.1:9092
  consumer: {sasl.password: hunter2, ssl.key.password: k3y, fetch.min.bytes: 1}
schema: {features: [a, b], classes: [0, 1]}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_check_config_prints_settings_without_secrets(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check-config", "--config", str(_write(tmp_path, GOOD))])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["schema"]["features"] == ["a", "b"]
    assert printed["kafka"]["consumer"] == {"sasl.password": "***", "ssl.key.password": "***", "fetch.min.bytes": 1}
    assert "hunter2" not in result.output
    assert "k3y" not in result.output


def test_check_config_names_the_bad_field(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check-config", "--config", str(_write(tmp_path, GOOD + "batching: {max_size: 0}\n"))])
    assert result.exit_code == 2
    assert "batching.max_size" in result.output


def test_check_config_builds_the_learner(tmp_path: Path) -> None:
    bad = GOOD + "model: {learner: river-logreg, params: {no_such_param: 1}}\n"
    result = runner.invoke(app, ["check-config", "--config", str(_write(tmp_path, bad))])
    assert result.exit_code == 2
    assert "no_such_param" in result.output


def test_mask_secrets_keeps_ordinary_keys() -> None:
    data = {"a": {"sasl.oauthbearer.client.secret": "s", "api_key": "k", "keys": [1], "token": "t"}}
    assert mask_secrets(data) == {"a": {"sasl.oauthbearer.client.secret": "***", "api_key": "***", "keys": [1],
                                        "token": "***"}}  # fmt: skip


def test_command_line_overrides_win_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_RUNTIME__WORKERS", "4")
    settings = load_settings(_write(tmp_path, GOOD))
    assert settings.runtime.workers == 4
    assert with_overrides(settings, runtime={"workers": 2}).runtime.workers == 2
    with pytest.raises(ConfigError, match=r"runtime\.workers"):
        with_overrides(settings, runtime={"workers": 0})


def test_topics_must_have_distinct_names(tmp_path: Path) -> None:
    clash = GOOD.replace(
        "bootstrap_servers: 127.0.0.1:9092", "bootstrap_servers: x:1\n  labels_topic: headwater.events"
    )
    result = runner.invoke(app, ["check-config", "--config", str(_write(tmp_path, clash))])
    assert result.exit_code == 2
    assert "every topic needs its own name" in result.output


def test_private_keys_and_jaas_settings_are_masked() -> None:
    data = {"ssl.key.pem": "-----BEGIN", "sasl.oauthbearer.config": "clientSecret=x", "sasl.jaas.config": "p"}
    assert set(mask_secrets(data).values()) == {"***"}


def test_check_config_builds_every_candidate_learner(tmp_path: Path) -> None:
    bad = GOOD + "model: {candidates: [{name: fork}, {name: alt, learner: torch-mlp, params: {widths: 3}}]}\n"
    result = runner.invoke(app, ["check-config", "--config", str(_write(tmp_path, bad))])
    assert result.exit_code == 2
    assert "torch-mlp" in result.output and "widths" in result.output


def test_registry_commands_show_versions_lineage_and_decisions(tmp_path: Path) -> None:
    import numpy as np

    from daemon.promoter import BoardPromoter
    from daemon.registry import SqliteRegistry
    from dataflows import ServingBoard
    from dataflows.ports import OffsetRange
    from learners import LearnerSpec, build_learner

    store = tmp_path / "registry"
    learner = build_learner(LearnerSpec("river-logreg"), n_features=2, n_classes=2, feature_names=["a", "b"])
    with SqliteRegistry(store) as registry:
        promoter = BoardPromoter(registry, ServingBoard())
        first = registry.create_version("default", name="champion", parent=None, learner=learner, config={}, ts_ms=1)
        promoter.install("default", version=first.id, learner=learner, reason="first champion", ts_ms=1)
        fork = registry.create_version("default", name="fork", parent=first.id, learner=learner, config={}, ts_ms=2)
        learner.learn(np.array([[0.0, 1.0]]), np.array([1]))
        registry.record_learning(fork.id, [OffsetRange("ev", 0, 0, 99), OffsetRange("ev", 0, 120, 199)], 150)
        promoter.promote("default", version=fork.id, learner=learner, previous=first.id,
                         reason="passed its shadow trial", evidence={"lower": 0.01}, ts_ms=3)  # fmt: skip
    config = _write(tmp_path, GOOD + f"registry: {{path: {store}}}\n")

    versions = runner.invoke(app, ["registry", "versions", "--config", str(config)])
    assert versions.exit_code == 0, versions.output
    assert "default/2" in versions.output and "champion" in versions.output
    assert "ev/0:0-99, ev/0:120-199 (1 gaps)" in versions.output
    assert "samples 150" in versions.output
    decisions = runner.invoke(app, ["registry", "decisions", "--config", str(config)])
    assert decisions.exit_code == 0, decisions.output
    lines = decisions.output.strip().splitlines()
    assert lines[0].endswith("promote  default/1: first champion")
    assert lines[1].endswith("promote  default/2 (was default/1): passed its shadow trial")
