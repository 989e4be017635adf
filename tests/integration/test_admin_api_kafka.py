"""The admin API on the real broker: a command is one message on the control topic that the train
step accepts, and a request without the token writes none; with a running daemon, ``wait_s``
returns the outcome the train step recorded, and the board shows rolling accuracy and lag from the
reports the daemon writes to the model-events topic. The API is served as the daemon serves it
(`AdminService`, on a free port)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from daemon.api import AdminService
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
ADMIN = {"token": TOKEN, "host": "127.0.0.1", "port": 0}


@contextmanager
def _service(settings: Settings) -> Iterator[tuple[httpx.Client, SqliteRegistry, AdminService]]:
    """The admin API as the daemon runs it, on a free port, over its own connection to the registry."""
    with SqliteRegistry(settings.registry.path) as registry:
        service = AdminService(settings, registry, None)
        service.start()
        try:
            assert service.follower.assigned.wait(30), "the report follower did not reach the model-events topic"
            with httpx.Client(base_url=f"http://127.0.0.1:{service.port}", timeout=60) as client:
                yield client, registry, service
        finally:
            service.stop()
        assert service.follower.error is None


def _wait_for(what: str, condition: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s:g} s")


def test_a_command_is_one_message_the_train_step_accepts_and_401_writes_none(fresh_settings: SettingsFactory) -> None:
    settings = fresh_settings(admin=ADMIN)
    brokers, group, control = settings.kafka.bootstrap_servers, settings.model.group, str(settings.topics().control)
    ensure_topics(brokers, [control], 1)
    with _service(settings) as (client, registry, _):
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
        readiness = client.get("/readyz")  # the probe reached the broker: no champion is the only reason
        assert (readiness.status_code, readiness.json()["reasons"]) == (503, ["no champion yet"])


def test_a_running_daemon_answers_wait_s_and_the_board_shows_its_reports(fresh_settings: SettingsFactory) -> None:
    settings = fresh_settings(runtime={"tail": True, "workers": 1}, admin=ADMIN)
    k, group = settings.kafka, settings.model.group
    daemon = BackgroundDaemon(settings)
    try:
        with _service(settings) as (client, registry, _):
            daemon.start()
            _wait_for("a champion", lambda: registry.champion(group) or daemon.errors, 60)
            assert daemon.errors == [], daemon.errors  # the daemon failed to start: say why
            assert client.get("/readyz").json() == {"ready": True, "reasons": []}
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
        assert daemon.stop(timeout_s=60), "the daemon did not stop within 60 s"
    assert daemon.errors == []
