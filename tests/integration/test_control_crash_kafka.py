"""kill -9 right after two acknowledged commands (a promotion and a new candidate), then a restart
on the same recovery store: each is applied once — the registry's command log holds each once,
the promoted version serves (once the results made before the kill are reported), and one model
learns under the new candidate's name. Decisions are frozen first (a command the snapshots hold),
so that nothing but the commands changes who serves."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from daemon.kafka_client import make_producer, produce_all, read_all
from daemon.registry import SqliteRegistry
from daemon.workload import Workload, WorkloadSpec
from dataflows.control import encode_command, new_command
from tests.integration.conftest import SettingsFactory
from tests.integration.test_crash_recovery_kafka import _start, _wait

pytestmark = pytest.mark.kafka

RATE = 1500.0


def test_commands_acknowledged_before_a_kill_9_apply_once_after_the_restart(
    fresh_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = fresh_settings(
        runtime={"tail": True, "workers": 1, "recovery_dir": str(tmp_path / "recovery"), "snapshot_interval_s": 1.0},
        promotion={"min_samples": 5000, "max_samples": 20000, "probation_samples": 5000},
    )
    k, group, registry_dir = settings.kafka, settings.model.group, settings.registry.path
    control = str(settings.topics().control)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    spec = WorkloadSpec(n_events=8_000, drift_at=8_000, malformed_every=0, unmatched_labels=0)
    items = list(Workload(spec).items())
    by_kind = {"events": k.events_topic, "labels": str(k.labels_topic)}
    producer = make_producer(k.bootstrap_servers)
    messages = [(by_kind[i.kind], i.key, i.value) for i in items]
    log = tmp_path / "daemon.log"

    def issue(kind: str, args: dict[str, Any]) -> str:
        cmd = new_command(group, kind, args, actor="it", reason=f"crash test: {kind}", ts_ms=int(time.time() * 1000))
        out = encode_command(cmd, control)
        produce_all(producer, [(out.topic, out.key, out.value)])
        return cmd.id

    def applied(*ids: str) -> bool:
        with SqliteRegistry(registry_dir) as registry:
            return all((r := registry.command(i)) is not None and r.outcome == "applied" for i in ids)

    daemon = _start(config, log)
    feeder = threading.Thread(target=produce_all, args=(producer, messages, RATE))
    try:
        feeder.start()
        freeze = issue("freeze", {})
        _wait(lambda: applied(freeze), 60, "decisions frozen")
        time.sleep(2.5)  # bounded: a snapshot or two hold the freeze, and the fork has learned something
        promote = issue("promote", {"model": "fork", "skip_golden": True})
        add = issue("add_candidate", {"candidate": {"name": "extra"}})
        _wait(lambda: applied(promote, add), 60, "both commands applied (as the admin API's wait_s reports)")
        daemon.send_signal(signal.SIGKILL)  # most likely before a snapshot holds them (every 1 s)
        assert daemon.wait(30) == -signal.SIGKILL
        with SqliteRegistry(registry_dir) as registry:
            champion_at_kill = registry.champion(group)
        assert champion_at_kill is not None and champion_at_kill.name == "fork"
        restarted_ms = time.time() * 1000
        first_run = len(log.read_bytes())
        daemon = _start(config, log)
        feeder.join(60)
        assert not feeder.is_alive()

        def all_served() -> bool:
            ids = {orjson.loads(m.value() or b"{}")["id"] for m in read_all(k.bootstrap_servers, [k.predictions_topic])}
            return len(ids) >= spec.n_events

        def running_again() -> bool:  # the stream may have been served whole before the kill
            return b"headwater running" in log.read_bytes()[first_run:]

        _wait(all_served, 120, "a prediction for every event")
        _wait(running_again, 120, "the restarted daemon running its flow")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if daemon.poll() is None:
            daemon.kill()

    with SqliteRegistry(registry_dir) as registry:
        log_rows = registry.commands(group)
        assert [(r.id, r.outcome) for r in log_rows] == [(freeze, "applied"), (promote, "applied"), (add, "applied")]
        champion = registry.champion(group)
        assert champion is not None and champion.id == champion_at_kill.id
        extra = [v for v in registry.versions(group) if v.name == "extra" and v.status == "candidate"]
        before = [d.previous for d in registry.decisions(group) if d.action == "promote" and d.version == champion.id]
        assert len(extra) == 1, [(v.id, v.status) for v in registry.versions(group) if v.name == "extra"]
    events = [orjson.loads(m.value() or b"{}") for m in read_all(k.bootstrap_servers, [k.model_events_topic])]
    records = [e for e in events if e["type"] == "command"]
    assert len(records) == len({r["id"] for r in records}) <= 3  # at most once each on the topic
    after = [e for e in events if e["type"] == "report" and e["ts_ms"] >= restarted_ms]
    assert {e["version"] for e in after if e["model"] == "extra"} == {extra[0].id}
    # The promoted version serves from the restart on. A snapshot keeps the results its lanes had
    # made and not yet reported: those made before the promotion keep the version that made them,
    # and are reported first (the topic is keyed by group: one partition, in order).
    served = [e["version"] for e in after if e["model"] == "champion"]
    assert served and served[-1] == champion_at_kill.id, served
    first_new = served.index(champion_at_kill.id)
    assert set(served[first_new:]) == {champion_at_kill.id}, served
    assert set(served[:first_new]) <= set(before), served
