"""The admin API on the real broker: a command is one message on the control topic that the train
step accepts, and a request without the token writes none; with a running daemon, ``wait_s``
returns the outcome the train step recorded, and the board shows rolling accuracy and lag from the
reports the daemon writes to the model-events topic."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from daemon.api import ApiDeps, BrokerProbe, KafkaCommandSink, ModelReports, Readiness, ReportFollower, create_app
from daemon.config import Settings
from daemon.kafka_client import make_producer, produce_all, read_all
from daemon.registry import SqliteRegistry
from daemon.topics import ensure_topics
from daemon.workload import Workload, WorkloadSpec
from dataflows.control import Command, CommandKind, decode_command
from tests.integration.conftest import BackgroundDaemon, SettingsFactory

pytestmark = pytest.mark.kafka

TOKEN = "integration-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def _client(settings: Settings, reports: ModelReports | None = None) -> Iterator[tuple[TestClient, SqliteRegistry]]:
    brokers = settings.kafka.bootstrap_servers
    sink = KafkaCommandSink(brokers, settings.kafka.producer)
    readiness = Readiness(BrokerProbe(sink, every_s=0.0))
    with SqliteRegistry(settings.registry.path) as registry:
        deps = ApiDeps(registry=registry, commands=sink, reports=reports or ModelReports(), readiness=readiness)
        with TestClient(create_app(settings, deps)) as client:
            yield client, registry
    sink.close()


def _wait_for(what: str, condition: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s:g} s")


def test_a_command_is_one_message_the_train_step_accepts_and_401_writes_none(fresh_settings: SettingsFactory) -> None:
    settings = fresh_settings(admin={"token": TOKEN})
    brokers, group, control = settings.kafka.bootstrap_servers, settings.model.group, str(settings.topics().control)
    ensure_topics(brokers, [control], 1)
    with _client(settings) as (client, registry):
        url = f"/groups/{group}/commands/freeze"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            assert client.post(url, json={"reason": "it"}, headers=headers).status_code == 401
        refused = client.post(f"/groups/{group}/commands/promote", json={"reason": "it", "version": f"{group}/9"},
                              headers=AUTH)  # fmt: skip
        assert refused.status_code == 404
        assert read_all(brokers, [control]) == []
        answer = client.post(url, json={"reason": "integration", "actor": "ops"}, headers=AUTH)
        assert answer.status_code == 202, answer.text
        [message] = read_all(brokers, [control])
        command = decode_command(message.key(), message.value(), control, message.partition() or 0,
                                 message.offset() or 0)  # fmt: skip
        assert isinstance(command, Command), command
        assert (command.id, command.group, command.kind, command.actor, command.reason) == (
            answer.json()["id"], group, CommandKind.FREEZE, "ops", "integration",
        )  # fmt: skip
        assert message.key() == group.encode()
        assert registry.commands(group) == []  # nothing applied: no daemon reads it here
        assert client.get("/readyz").json() == {"ready": True, "reasons": []}  # the probe reached the broker


def test_a_running_daemon_answers_wait_s_and_the_board_shows_its_reports(fresh_settings: SettingsFactory) -> None:
    settings = fresh_settings(runtime={"tail": True, "workers": 1}, admin={"token": TOKEN})
    k, group = settings.kafka, settings.model.group
    reports = ModelReports()
    follower = ReportFollower(k.bootstrap_servers, k.model_events_topic, reports)
    follower.start()
    daemon = BackgroundDaemon(settings).start()
    try:
        assert follower.assigned.wait(30), "the report follower did not reach the model-events topic"
        with _client(settings, reports) as (client, registry):
            _wait_for("a champion", lambda: registry.champion(group), 60)
            answer = client.post(f"/groups/{group}/commands/freeze", json={"reason": "integration"}, headers=AUTH,
                                 params={"wait_s": 30})  # fmt: skip
            assert answer.status_code == 200, answer.text
            outcome = answer.json()["outcome"]
            assert (outcome["outcome"], outcome["kind"], outcome["id"]) == ("applied", "freeze", answer.json()["id"])
            assert [c["id"] for c in client.get(f"/groups/{group}/commands").json()["items"]] == [outcome["id"]]
            spec = WorkloadSpec(n_events=1500, drift_at=1500, inline_share=1.0, delayed_share=0.0, malformed_every=0,
                                unmatched_labels=0)  # fmt: skip
            by_kind = {"events": k.events_topic, "labels": str(k.labels_topic)}
            produce_all(make_producer(k.bootstrap_servers),
                        ((by_kind[i.kind], i.key, i.value) for i in Workload(spec).items()))  # fmt: skip

            def champion_accuracy() -> Any:
                board = client.get(f"/groups/{group}").json()
                return next(
                    (m for m in board["models"] if m["role"] == "champion" and m["rolling_accuracy"] is not None), None
                )

            champion = _wait_for("the champion's rolling accuracy on the board", champion_accuracy, 60)
            assert 0.0 <= champion["rolling_accuracy"] <= 1.0 and champion["lag_batches"] >= 0
            assert champion["report_ts_ms"] > outcome["ts_ms"]  # read after the command, from the topic
    finally:
        follower.stop()
        assert daemon.stop(timeout_s=60), "the daemon did not stop within 60 s"
        follower.join(10)
    assert daemon.errors == []
    assert follower.error is None
