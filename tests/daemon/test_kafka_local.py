"""The local-broker script: clear messages when tools are missing, and harmless when repeated."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.kafka_local import KafkaLocal, KafkaLocalError, main


def test_missing_maven_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn, no java
    kafka = KafkaLocal(cache=tmp_path / "cache", port=19092, controller_port=19093)
    with pytest.raises(KafkaLocalError, match=r"Maven \('mvn'\) is not on PATH: install it"):
        kafka.fetch_jars()


def test_missing_java_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mvn = tmp_path / "mvn"
    fake_mvn.write_text("#!/bin/sh\nexit 0\n")
    fake_mvn.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    kafka = KafkaLocal(cache=tmp_path / "cache", port=19092, controller_port=19093)
    with pytest.raises(KafkaLocalError, match="install a JDK 17 or newer"):
        kafka.fetch_jars()


def test_cli_reports_errors_with_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HEADWATER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HEADWATER_KAFKA_PORT", "19092")
    assert main(["fetch"]) == 2
    assert "error: Maven" in capsys.readouterr().err


def test_status_of_a_broker_that_never_ran(tmp_path: Path) -> None:
    kafka = KafkaLocal(cache=tmp_path / "cache", port=19092, controller_port=19093)
    assert kafka.pid() is None
    assert kafka.status() is False


def test_config_binds_everything_to_loopback(tmp_path: Path) -> None:
    kafka = KafkaLocal(cache=tmp_path, port=19092, controller_port=19093)
    kafka.home.mkdir(parents=True)
    props = dict(line.split("=", 1) for line in kafka._write_config().read_text().splitlines() if line and "=" in line)
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert props["offsets.topic.replication.factor"] == "1"


def test_partitions_on_disk_counts_the_directories_a_start_loads(tmp_path: Path) -> None:
    kafka = KafkaLocal(cache=tmp_path, port=19092, controller_port=19093)
    assert kafka.partitions_on_disk() == 0  # never started: no data directory
    data = kafka.home / "data"
    for name in ("it-1.events-0", "it-1.events-1", "__consumer_offsets-0", "__cluster_metadata-0"):
        (data / name).mkdir(parents=True)
    (data / "meta.properties").write_text("")
    (data / "recovery-point-offset-checkpoint").write_text("")
    assert kafka.partitions_on_disk() == 4
