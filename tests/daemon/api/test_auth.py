"""Every mutation needs the admin token: without it, with another, or with another scheme it is
401 and nothing is written (not to the control topic, not to the registry); with no token
configured the API is read-only (403) and says so when it starts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from daemon.api import ApiDeps, create_app
from daemon.registry import SqliteRegistry
from tests.daemon.api.conftest import GROUP, TOKEN, Api, ApiFactory, FakeSink, settings_for
from tests.daemon.api.mutations import ROUTES, VALID


def _state(api: Api) -> tuple[Any, ...]:
    return (api.registry.versions(GROUP), api.registry.commands(GROUP), api.registry.decision_count(GROUP))


@pytest.mark.parametrize(("route", "body"), ROUTES)
def test_no_token_a_wrong_one_or_another_scheme_is_401_and_writes_nothing(
    api: Api, route: str, body: dict[str, Any]
) -> None:
    before = _state(api)
    for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": TOKEN}, {"Authorization": f"Bearer {TOKEN[:-1]}"}):  # fmt: skip
        answer = api.client.post(f"/groups/{GROUP}/commands/{route}", json=body, headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["kind"] == "unauthorized"
    assert api.sink.sent == []
    assert _state(api) == before
    assert api.post(route, body).status_code == 202  # the same request with the token


@pytest.mark.parametrize(("route", "body"), ROUTES)
def test_without_the_token_nothing_else_is_looked_at(api: Api, route: str, body: dict[str, Any]) -> None:
    """An invalid body or an unknown group tells a caller without the token nothing: 401 first."""
    assert api.post(route, {"nonsense": True}, token=None).status_code == 401
    assert api.client.post(f"/groups/nope/commands/{route}", json=body).status_code == 401
    assert api.sink.sent == []


def test_with_no_token_configured_the_api_is_read_only_and_says_so(
    make_api: ApiFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="headwater"):
        api = make_api(token=None)
    assert [r.getMessage() for r in caplog.records if "read-only" in r.getMessage()] != []
    for route, body, _, _ in VALID:
        for token in (None, TOKEN, ""):
            answer = api.post(route, body, token=token)
            assert (answer.status_code, answer.json()["kind"]) == (403, "read_only"), (route, token)
    assert api.sink.sent == []
    assert api.client.get(f"/groups/{GROUP}").status_code == 200  # reads still work


def test_a_daemon_with_a_token_does_not_say_read_only(make_api: ApiFactory, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="headwater"):
        make_api()
    assert not [r for r in caplog.records if "read-only" in r.getMessage()]


def test_the_token_can_come_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-a-secret\n")
    settings = settings_for(tmp_path, token_file=str(token_file))
    with SqliteRegistry(settings.registry.path) as registry:
        sink = FakeSink(registry)
        client = TestClient(create_app(settings, ApiDeps(registry=registry, commands=sink)))
        url, body = f"/groups/{GROUP}/commands/freeze", {"reason": "r"}
        assert client.post(url, json=body, headers={"Authorization": "Bearer from-a-secret"}).status_code == 202
        assert client.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
        assert len(sink.sent) == 1
