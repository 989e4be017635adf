"""``headwater models`` against a real admin API served on a free port: reads print what the API
holds, commands reach the control topic with the token from a file or the environment, and the
exit code says what became of them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from daemon.api import AdminServer
from daemon.cli import app
from tests.daemon.api.conftest import GROUP, TOKEN, Api, ApiFactory

runner = CliRunner()


@dataclass
class Served:
    api: Api
    url: str
    token_file: Path

    def run(self, *args: str, token: bool = True, env: dict[str, str] | None = None) -> tuple[int, str]:
        options = ["--url", self.url] + (["--token-file", str(self.token_file)] if token else [])
        clean = {"HEADWATER_ADMIN_TOKEN": "", "HEADWATER_ADMIN__TOKEN": ""}  # the tester's own stay out
        result = runner.invoke(app, ["models", *args, *options], env=clean | (env or {}))
        return result.exit_code, result.output


ServeFactory = Callable[..., Served]


@pytest.fixture
def serve(make_api: ApiFactory, tmp_path: Path) -> Iterator[ServeFactory]:
    servers: list[AdminServer] = []
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")

    def start(answer: str | None = "applied") -> Served:
        api = make_api(answer=answer)
        server = AdminServer(api.app, "127.0.0.1", 0)
        server.start()
        servers.append(server)
        return Served(api, f"http://127.0.0.1:{server.port}", token_file)

    yield start
    for server in servers:
        server.stop()


def test_reads_print_the_board_versions_decisions_and_commands(serve: ServeFactory) -> None:
    served = serve()
    code, out = served.run("list", token=False)
    assert (code, out.split()) == (0, [GROUP])
    code, out = served.run("board", token=False)
    assert code == 0, out
    assert "default: default/2 serves, canary default/3 on 25% (table 1)" in out
    assert [line.split()[:4] for line in out.splitlines()[1:]] == [
        ["default/2", "champion", "fork", "accuracy"], ["default/1", "standby", "champion", "accuracy"],
        ["default/3", "candidate", "fork", "accuracy"],
    ]  # fmt: skip
    assert "accuracy 0.9100  lag 0" in out and "trial shadow passed" in out
    code, out = served.run("versions", "--status", "retired", token=False)
    assert code == 0 and out.split()[:2] == ["default/4", "retired"]
    code, out = served.run("decisions", "--skip", "1", token=False)
    assert code == 0 and "refuse   default/4: shadow failed" in out and "1 of 2 decisions from #1" in out
    code, out = served.run("board", "--json", token=False)
    assert json.loads(out)["serving"]["champion"] == "default/2"


def test_a_command_with_the_token_file_waits_for_its_outcome(serve: ServeFactory) -> None:
    served = serve()
    code, out = served.run("pause", "fork", "--reason", "labels late", "--actor", "alice")
    assert code == 0, out
    [command] = served.api.sink.decoded()
    assert (command.kind, command.wire_args(), command.actor, command.reason) == ("pause", {"model": "fork"}, "alice",
                                                                                 "labels late")  # fmt: skip
    assert f"pause {command.id}: applied: done" in out
    code, out = served.run("commands")
    assert code == 0 and command.id in out and "applied" in out


@pytest.mark.parametrize(("args", "kind", "wire"), [
    (["promote", "--version", "1", "--group", GROUP], "promote", {"model": None, "version": "default/1",
                                                                 "skip_golden": False}),
    (["promote", "fork", "--skip-golden"], "promote", {"model": "fork", "version": None, "skip_golden": True}),
    (["rollback"], "rollback", {"version": None}),
    (["freeze"], "freeze", {}),
    (["unfreeze"], "unfreeze", {}),
    (["resume"], "resume", {"model": None}),
    (["retire", "fork"], "retire", {"model": "fork"}),
    (["add-candidate", "{name: wide, learner: river-logreg, params: {l2: 0.1}}"], "add_candidate",
     {"candidate": {"name": "wide", "learner": "river-logreg", "params": {"l2": 0.1}}}),
    (["canary-ceiling", "0.2"], "set_canary_ceiling", {"share": 0.2}),
    (["replay", "{name: again}", "my.events/0/0-99", "my.events/3/10-20"], "replay",
     {"candidate": {"name": "again"}, "ranges": [{"topic": "my.events", "partition": 0, "first": 0, "last": 99},
                                                 {"topic": "my.events", "partition": 3, "first": 10, "last": 20}]}),
])  # fmt: skip
def test_each_command_writes_its_command(
    serve: ServeFactory, args: list[str], kind: str, wire: dict[str, object]
) -> None:
    served = serve()
    code, out = served.run(*args, "--reason", "by hand")
    assert code == 0, out
    [command] = served.api.sink.decoded()
    assert (command.kind, command.wire_args(), command.reason) == (kind, wire, "by hand")


def test_the_token_can_come_from_the_environment_and_without_one_nothing_is_sent(serve: ServeFactory) -> None:
    served = serve()
    code, out = served.run("freeze", "--reason", "r", token=False)
    assert code == 2 and "401" in out and "admin token" in out
    assert served.api.sink.sent == []
    code, out = served.run("freeze", "--reason", "r", token=False, env={"HEADWATER_ADMIN_TOKEN": TOKEN})
    assert code == 0, out
    code, out = served.run("freeze", "--reason", "r", token=False, env={"HEADWATER_ADMIN__TOKEN": TOKEN})
    assert code == 0, out
    assert len(served.api.sink.sent) == 2


def test_exit_codes_say_rejected_refused_unreachable_or_no_outcome_yet(serve: ServeFactory) -> None:
    rejected = serve(answer="rejected")
    code, out = rejected.run("retire", "fork", "--reason", "r")
    assert code == 1 and ": rejected: done" in out
    pending = serve(answer=None)
    code, out = pending.run("freeze", "--reason", "r", "--wait", "0")
    assert code == 0 and "accepted, no outcome within 0 s" in out
    code, out = pending.run("promote", "--version", "default/99", "--reason", "r")
    assert code == 2 and "404" in out and "default/99" in out
    code, out = pending.run("add-candidate", "[1, 2]", "--reason", "r")
    assert code == 2 and "must be a mapping" in out
    code, out = Served(pending.api, "http://127.0.0.1:9", pending.token_file).run("board")
    assert code == 3 and "cannot reach the admin API" in out
    assert len(pending.api.sink.sent) == 1
