"""The admin API over a real registry in tmp_path, with a history a board can show, and a fake
command sink that keeps what it was given (and may answer for the train step)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from daemon.api import ApiDeps, ModelReports, Readiness, create_app
from daemon.config import Settings, load_settings
from daemon.registry import SqliteRegistry
from dataflows.control import Command, decode_command
from dataflows.kafka_io import DeliveryError
from dataflows.ports import Decision, OffsetRange
from dataflows.records import CommandRecord, KafkaOut, ModelReport
from dataflows.serve import Served, ServingBoard, ServingTable
from learners import Learner, LearnerSpec, build_learner

GROUP = "default"
TOKEN = "the-admin-token-0123456789"
CONTROL = "test.control"
NOW_S = 1_765_000_000.0


def learner() -> Learner:
    return build_learner(LearnerSpec("river-logreg"), n_features=1, n_classes=2, feature_names=["x"])


def settings_for(tmp_path: Path, **admin: Any) -> Settings:
    return load_settings(
        None, schema={"features": ["x"], "classes": [0, 1]}, registry={"path": str(tmp_path / "registry")},
        kafka={"control_topic": CONTROL, "producer": {"sasl.password": "hunter2"}},
        model={"candidates": [{"name": "fork"}]}, admin=admin,
    )  # fmt: skip


def populate(registry: SqliteRegistry) -> None:
    """default/1 served, then default/2 (a fork) was promoted over it: 2 champion, 1 standby;
    default/3 a fork learning now; default/4 ("big") refused, with a checkpoint; other/1 elsewhere."""
    model = learner()

    def version(name: str, parent: str | None, status: str = "candidate", group: str = GROUP) -> str:
        return registry.create_version(group, name=name, parent=parent, learner=model, config={"learner": "x"},
                                       ts_ms=1_000, status=status).id  # fmt: skip

    v1 = version("champion", None, "champion")
    registry.save_checkpoint(v1, model)
    registry.record_learning(v1, [OffsetRange("events", 0, 0, 99)], samples=100)
    v2 = version("fork", v1)
    registry.save_checkpoint(v2, model)
    registry.record_verdict(v2, "shadow", "running", "collecting", {"n": 50}, 2_000)
    registry.record_verdict(v2, "shadow", "passed", "better", {"n": 400, "lift": 0.02}, 3_000)
    registry.record_decision(Decision(GROUP, "promote", v2, "shadow passed", 3_000, previous=v1, evidence={"n": 400}))
    v3 = version("fork", v2)
    registry.record_verdict(v3, "shadow", "running", "collecting", {"n": 10}, 4_000)
    v4 = version("big", v1)
    registry.save_checkpoint(v4, model)
    registry.record_decision(Decision(GROUP, "refuse", v4, "shadow failed", 3_500))
    version("champion", None, "champion", group="other")


@dataclass
class FakeSink:
    """Keeps every command it is given; ``answer`` records an outcome as the train step would."""

    registry: SqliteRegistry
    answer: str | None = None
    fail: bool = False
    sent: list[KafkaOut] = field(default_factory=list)

    def send(self, out: KafkaOut) -> None:
        if self.fail:
            raise DeliveryError("the broker is away")
        self.sent.append(out)
        if self.answer is not None:
            command = self.decoded()[-1]
            self.registry.record_command(CommandRecord(
                group=command.group, id=command.id, kind=command.kind.value, args=command.wire_args(),
                actor=command.actor, reason=command.reason, outcome=self.answer, detail="done", ts_ms=command.ts_ms,
                issued_ts_ms=command.ts_ms, source=command.source,
            ))  # fmt: skip

    def decoded(self) -> list[Command]:
        commands = [decode_command(o.key, o.value, o.topic, 0, i) for i, o in enumerate(self.sent)]
        assert all(isinstance(c, Command) for c in commands), commands
        return commands  # type: ignore[return-value]


@dataclass
class Requests:
    """What the API counted: (method, route, status)."""

    seen: list[tuple[str, str, int]] = field(default_factory=list)

    def http_request(self, method: str, route: str, status: int, duration_s: float) -> None:
        assert duration_s >= 0
        self.seen.append((method, route, status))


@dataclass
class Api:
    app: FastAPI
    client: TestClient
    registry: SqliteRegistry
    sink: FakeSink
    deps: ApiDeps
    requests: Requests

    def post(self, path: str, body: dict[str, Any], token: str | None = TOKEN, headers: dict[str, str] | None = None,
             **kw: Any) -> Any:  # fmt: skip
        auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.client.post(f"/groups/{GROUP}/commands/{path}", json=body, headers=auth | (headers or {}), **kw)


ApiFactory = Callable[..., Api]


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[ApiFactory]:
    made: list[tuple[TestClient, SqliteRegistry]] = []

    def make(*, token: str | None = TOKEN, readiness: Readiness | None = None, board: bool = True,
             answer: str | None = None) -> Api:  # fmt: skip
        home = tmp_path / f"api-{len(made)}"
        settings = settings_for(home, **({"token": token} if token is not None else {}))
        registry = SqliteRegistry(settings.registry.path)
        populate(registry)
        serving = ServingBoard()
        serving.publish(ServingTable(GROUP, Served("default/2", learner()), Served("default/3", learner()), 0.25))
        reports = ModelReports()
        reports.put(ModelReport(group=GROUP, model="champion", version="default/2", role="champion", ts_ms=5_000,
                                batch=7, rolling_accuracy=0.91, lag_batches=0))  # fmt: skip
        reports.put(ModelReport(group=GROUP, model="fork", version="default/3", role="candidate", ts_ms=5_000,
                                batch=7, rolling_accuracy=float("nan"), lag_batches=3))  # fmt: skip
        sink, requests = FakeSink(registry, answer), Requests()
        deps = ApiDeps(registry=registry, commands=sink, board=serving if board else None, reports=reports,
                       readiness=readiness or Readiness(), http_metrics=requests, clock=lambda: NOW_S)  # fmt: skip
        app = create_app(settings, deps)
        client = TestClient(app, raise_server_exceptions=False)
        made.append((client, registry))
        return Api(app, client, registry, sink, deps, requests)

    yield make
    for client, registry in made:
        client.close()
        registry.close()


@pytest.fixture
def api(make_api: ApiFactory) -> Api:
    return make_api()
