"""The recovery store's manifest: a restart with a config that does not fit the state fails early."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from daemon.cli import app
from daemon.recovery import MANIFEST, RecoveryMismatchError, manifest_for, prepare_recovery, source_part_names
from dataflows import FeatureSchema, FlowConfig, Topics
from dataflows.train import STATE_FORMAT
from learners import LearnerSpec


def _config(
    features: list[str],
    classes: list[int | str] | None = None,
    group: str = "default",
    categories: dict[str, list[int | str]] | None = None,
) -> FlowConfig:
    return FlowConfig(
        brokers="unused:9092",
        topics=Topics("events", "predictions", "dead-letters", "model-events"),
        schema=FeatureSchema(features, classes or [0, 1], categories=categories or {}),
        learner=LearnerSpec("river-logreg"),
        group=group,
    )


def test_first_use_creates_the_store_and_its_manifest(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    recovery = prepare_recovery(store, 3, _config(["a", "b"]))
    assert Path(recovery.db_dir) == store
    assert len(list(store.glob("*.sqlite3"))) == 3
    manifest = json.loads((store / MANIFEST).read_text())
    assert manifest == {"format": STATE_FORMAT, "group": "default", "features": ["a", "b"], "classes": [0, 1],
                        "learner": {"name": "river-logreg", "params": {}, "seed": 0},
                        "source_parts": "balanced"}  # fmt: skip


def test_a_store_that_fits_is_reused_untouched(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    prepare_recovery(store, 2, _config(["a", "b"]))
    before = {p.name: p.stat().st_mtime_ns for p in store.iterdir()}
    prepare_recovery(store, 2, _config(["a", "b"]))
    assert {p.name: p.stat().st_mtime_ns for p in store.iterdir()} == before


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (_config(["a", "b", "c"]), "features: the store has ['a', 'b'], the config says ['a', 'b', 'c']"),
        (_config(["b", "a"]), "features: the store has ['a', 'b'], the config says ['b', 'a']"),
        (_config(["a", "b"], ["no", "yes"]), "classes: the store has [0, 1], the config says ['no', 'yes']"),
        (_config(["a", "b"], group="fraud"), "group: the store has 'default', the config says 'fraud'"),
        (_config(["a", "b"], categories={"b": ["x", "y"]}), "categories: the store has {}, the config says {'b'"),
    ],
)
def test_a_store_for_another_schema_is_refused_with_what_changed(
    tmp_path: Path, config: FlowConfig, named: str
) -> None:
    store = tmp_path / "recovery"
    prepare_recovery(store, 2, _config(["a", "b"]))
    with pytest.raises(RecoveryMismatchError) as caught:
        prepare_recovery(store, 2, config)
    assert named in str(caught.value)
    assert "runtime.recovery_dir" in str(caught.value)


def test_a_store_of_another_state_format_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    prepare_recovery(store, 1, _config(["a"]))
    manifest = manifest_for(_config(["a"])) | {"format": STATE_FORMAT + 1}
    (store / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(RecoveryMismatchError, match=f"holds state of format {STATE_FORMAT + 1}; this Headwater reads"):
        prepare_recovery(store, 1, _config(["a"]))


def test_an_unreadable_manifest_is_a_clear_error(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    prepare_recovery(store, 1, _config(["a"]))
    (store / MANIFEST).write_text("{not json")
    with pytest.raises(RecoveryMismatchError, match=f"cannot read .*{MANIFEST}"):
        prepare_recovery(store, 1, _config(["a"]))


def test_run_refuses_the_store_before_touching_kafka(tmp_path: Path) -> None:
    store = tmp_path / "recovery"
    prepare_recovery(store, 2, _config(["a", "b"]))
    config = tmp_path / "config.yaml"
    # Nothing listens on port 9: had the daemon got as far as Kafka, it would hang or fail otherwise.
    config.write_text(
        "kafka: {bootstrap_servers: '127.0.0.1:9'}\n"
        "schema: {features: [a, b, c], classes: [0, 1]}\n"
        f"runtime: {{recovery_dir: '{store}'}}\n"
    )
    result = CliRunner().invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "features: the store has ['a', 'b'], the config says ['a', 'b', 'c']" in result.output


def test_another_learner_is_not_refused_but_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = tmp_path / "recovery"
    prepare_recovery(store, 1, _config(["a"]))
    other = FlowConfig(
        brokers="unused:9092",
        topics=Topics("events", "predictions", "dead-letters", "model-events"),
        schema=FeatureSchema(["a"], [0, 1]),
        learner=LearnerSpec("torch-mlp", {"hidden": [8]}),
    )
    with caplog.at_level("WARNING", logger="headwater"):
        prepare_recovery(store, 1, other)
    assert "model.learner now says {'name': 'torch-mlp', 'params': {'hidden': [8]}, 'seed': 0}" in caplog.text
    assert "started with learner {'name': 'river-logreg'" in caplog.text


def test_a_store_of_an_older_migratable_format_is_accepted_and_relabelled(tmp_path: Path) -> None:
    """Format 1 (one model that served and learned) is carried forward as the flow resumes it:
    the store is not refused, and its manifest then says the current format."""
    store = tmp_path / "recovery"
    prepare_recovery(store, 1, _config(["a"]))
    (store / MANIFEST).write_text(json.dumps(manifest_for(_config(["a"])) | {"format": 1}))
    prepare_recovery(store, 1, _config(["a"]))
    assert json.loads((store / MANIFEST).read_text())["format"] == STATE_FORMAT


def test_a_store_for_other_category_lists_is_refused(tmp_path: Path) -> None:
    """A category's code is its position: reordered values would change what every code means."""
    store = tmp_path / "recovery"
    prepare_recovery(store, 2, _config(["a", "b"], categories={"b": ["x", "y"]}))
    prepare_recovery(store, 2, _config(["a", "b"], categories={"b": ["x", "y"]}))  # the same lists fit
    with pytest.raises(RecoveryMismatchError, match="categories: the store has"):
        prepare_recovery(store, 2, _config(["a", "b"], categories={"b": ["y", "x"]}))


def test_a_store_keeps_the_partition_names_its_offsets_are_stored_under(tmp_path: Path) -> None:
    """A new store names partitions so that workers share them evenly; one made before the manifest
    said how keeps Bytewax's names (renamed, its input offsets would be lost and everything read again)."""
    new = tmp_path / "new"
    assert source_part_names(new) == "balanced"
    prepare_recovery(new, 2, _config(["a", "b"]))
    assert source_part_names(new) == "balanced"
    old = tmp_path / "old"
    prepare_recovery(old, 2, _config(["a", "b"]))
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["source_parts"]
    (old / MANIFEST).write_text(json.dumps(manifest))
    assert source_part_names(old) == "legacy"
    prepare_recovery(old, 2, _config(["a", "b"]))  # still fits: the name scheme is not a schema change
