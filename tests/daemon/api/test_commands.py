"""Each command route writes exactly one command, as the train step will read it; refusals write
nothing; ``wait_s`` returns the outcome the train step recorded, or gives up within its bound."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from dataflows.control import CommandKind
from dataflows.ports import Decision
from tests.daemon.api.conftest import CONTROL, GROUP, NOW_S, TOKEN, Api, ApiFactory
from tests.daemon.api.mutations import VALID


@pytest.mark.parametrize(("route", "body", "kind", "args"), [pytest.param(*v, id=v[0]) for v in VALID])
def test_a_command_route_writes_one_command_the_train_step_accepts(
    api: Api, route: str, body: dict[str, Any], kind: str, args: dict[str, Any]
) -> None:
    answer = api.post(route, body)
    assert answer.status_code == 202, answer.text
    [out] = api.sink.sent
    assert (out.topic, out.key) == (CONTROL, GROUP.encode())
    [command] = api.sink.decoded()
    assert answer.json() == {"id": command.id, "group": GROUP, "kind": kind, "outcome": None}
    assert (command.group, command.kind, command.wire_args()) == (GROUP, CommandKind(kind), args)
    assert (command.actor, command.reason, command.ts_ms) == ("api", body["reason"], int(NOW_S * 1000))


def test_the_actor_comes_from_the_body(api: Api) -> None:
    assert api.post("freeze", {"reason": "incident", "actor": "alice"}).status_code == 202
    assert api.sink.decoded()[0].actor == "alice"


def test_wait_s_returns_the_outcome_the_train_step_recorded(make_api: ApiFactory) -> None:
    api = make_api(answer="applied")
    answer = api.post("freeze", {"reason": "incident"}, params={"wait_s": 5})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["outcome"]["outcome"] == "applied" and body["outcome"]["id"] == body["id"]
    assert body["outcome"]["kind"] == "freeze"


def test_wait_s_gives_up_within_its_bound_without_an_outcome(api: Api) -> None:
    started = time.monotonic()
    answer = api.post("freeze", {"reason": "incident"}, params={"wait_s": 0.3})
    took = time.monotonic() - started
    assert (answer.status_code, answer.json()["outcome"]) == (202, None)
    assert 0.3 <= took < 5.0
    assert api.post("freeze", {"reason": "x"}, params={"wait_s": 61}).status_code == 422


def test_a_command_the_broker_does_not_acknowledge_is_503_with_its_id(api: Api) -> None:
    api.sink.fail = True
    answer = api.post("freeze", {"reason": "incident"})
    assert answer.status_code == 503
    assert answer.json()["kind"] == "unavailable" and answer.json()["command_id"]


SURROGATE_PARAM = b'{"reason": "r", "candidate": {"name": "x", "learner": "l", "params": {"a": "\\ud800"}}}'

REFUSED = [
    # unknown group, version or model: 404
    ("freeze", {"reason": "r"}, 404, "other"),
    ("promote", {"reason": "r", "version": "default/99"}, 404, GROUP),
    ("promote", {"reason": "r", "version": "other/1"}, 404, GROUP),
    ("promote", {"reason": "r", "model": "nope"}, 404, GROUP),
    ("rollback", {"reason": "r", "version": "default/99"}, 404, GROUP),
    ("pause", {"reason": "r", "model": "nope"}, 404, GROUP),
    ("resume", {"reason": "r", "model": "nope"}, 404, GROUP),
    ("retire", {"reason": "r", "model": "nope"}, 404, GROUP),
    # conflicts with who serves: 409
    ("promote", {"reason": "r", "version": "default/2"}, 409, GROUP),  # the champion
    ("promote", {"reason": "r", "version": "default/3"}, 409, GROUP),  # no checkpoint
    ("rollback", {"reason": "r", "version": "default/2"}, 409, GROUP),  # the champion
    ("rollback", {"reason": "r", "version": "default/4"}, 409, GROUP),  # never served
    ("add-candidate", {"reason": "r", "candidate": {"name": "fork"}}, 409, GROUP),  # a fork learns now
    (
        "replay",
        {
            "reason": "r",
            "candidate": {"name": "fork"},
            "ranges": [{"topic": "e", "partition": 0, "first": 0, "last": 9}],
        },
        409,
        GROUP,
    ),
    ("replay", {"reason": "r", "candidate": {"name": "x"}, "ranges": []}, 422, GROUP),
    (
        "replay",
        {"reason": "r", "candidate": {"name": "x"}, "ranges": [{"topic": "e", "partition": -1, "first": 0, "last": 9}]},
        422,
        GROUP,
    ),
    # invalid: 422
    ("pause", {"reason": "r", "model": "champion"}, 422, GROUP),
    ("retire", {"reason": "r", "model": "standby"}, 422, GROUP),
    ("retire", {"reason": "r"}, 422, GROUP),
    ("promote", {"reason": "r"}, 422, GROUP),
    ("promote", {"reason": "r", "model": "fork", "version": "default/1"}, 422, GROUP),
    ("canary-ceiling", {"reason": "r", "share": 1.5}, 422, GROUP),
    ("canary-ceiling", {"reason": "r"}, 422, GROUP),
    ("freeze", {}, 422, GROUP),
    ("freeze", {"reason": ""}, 422, GROUP),
    ("freeze", {"reason": "   "}, 422, GROUP),
    ("freeze", {"reason": "r", "actor": ""}, 422, GROUP),
    ("freeze", {"reason": "r", "extra": 1}, 422, GROUP),
    ("freeze", b'{"reason": "\\ud800"}', 422, GROUP),  # JSON may say it; UTF-8 cannot
    ("add-candidate", SURROGATE_PARAM, 422, GROUP),
    ("add-candidate", {"reason": "r", "candidate": {"name": "Not A Name"}}, 422, GROUP),
    ("add-candidate", {"reason": "r", "candidate": {"name": "x", "params": {"a": 1}}}, 422, GROUP),  # a fork's params
    ("add-candidate", {"reason": "r", "candidate": {"name": "x", "surprise": 1}}, 422, GROUP),
]


@pytest.mark.parametrize(("route", "body", "status", "group"), REFUSED)
def test_a_refused_command_writes_nothing(api: Api, route: str, body: Any, status: int, group: str) -> None:
    before = api.registry.versions(GROUP), api.registry.commands(GROUP)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    answer = api.client.post(f"/groups/{group}/commands/{route}", content=raw, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["kind"] == {404: "not_found", 409: "conflict", 422: "invalid"}[status]
    assert isinstance(answer.json()["detail"], str) and answer.json()["detail"]
    assert api.sink.sent == []
    assert (api.registry.versions(GROUP), api.registry.commands(GROUP)) == before


def test_rolling_back_to_the_standby_needs_one(api: Api) -> None:
    api.registry.record_decision(Decision(GROUP, "retire", "default/1", "the standby's turn is over", 6_000))
    answer = api.post("rollback", {"reason": "worse"})
    assert answer.status_code == 409 and "no standby" in answer.json()["detail"]
    assert api.sink.sent == []
    assert api.post("rollback", {"reason": "worse", "version": "default/1"}).status_code == 202  # it served once
