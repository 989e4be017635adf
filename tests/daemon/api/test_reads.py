"""The reads: groups, a group's board, versions with lineage and verdicts, decisions and commands
a page at a time, the effective config with its secrets masked, health and readiness."""

from __future__ import annotations

from daemon.api import NO_CHAMPION, RECOVERING, Readiness
from dataflows.portfolio import Member
from dataflows.records import CommandRecord, SourceRef
from tests.daemon.api.conftest import GROUP, TOKEN, Api, ApiFactory, learner


def test_groups_lists_the_daemons_group_and_an_unknown_group_is_404(api: Api) -> None:
    assert api.client.get("/groups").json() == {"groups": [GROUP]}
    for path in ("/groups/other", "/groups/other/versions", "/groups/other/decisions", "/groups/other/commands"):
        answer = api.client.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["kind"] == "not_found"


def test_the_board_shows_who_serves_and_each_live_models_role_accuracy_lag_and_trial(api: Api) -> None:
    board = api.client.get(f"/groups/{GROUP}").json()
    assert board["serving"] == {"seq": 1, "champion": "default/2", "canary": "default/3", "canary_share": 0.25,
                                "live": None, "vote": None}  # fmt: skip
    assert [(m["version"], m["role"], m["name"]) for m in board["models"]] == [
        ("default/2", "champion", "fork"), ("default/1", "standby", "champion"), ("default/3", "candidate", "fork"),
    ]  # fmt: skip
    champion, standby, fork = board["models"]
    assert (champion["rolling_accuracy"], champion["lag_batches"], champion["report_ts_ms"]) == (0.91, 0, 5_000)
    assert champion["trial"] == {"shadow": "passed"}  # the latest verdict, not the first
    assert (standby["rolling_accuracy"], standby["lag_batches"], standby["trial"]) == (None, None, {})
    assert (fork["rolling_accuracy"], fork["lag_batches"], fork["trial"]) == (None, 3, {"shadow": "running"})  # NaN


def test_the_board_shows_the_votes_members_weights_and_choice(api: Api) -> None:
    board = api.deps.board
    assert board is not None
    board.set_vote(GROUP, {"fork": 0.75, "tree": 0.25}, "vote")
    board.serve_member(GROUP, "fork", Member("default/3", learner()))
    assert api.client.get(f"/groups/{GROUP}").json()["serving"]["vote"] == {
        "choice": "vote", "members": {"fork": {"version": "default/3", "weight": 0.75, "share": None},
                                      "tree": {"version": None, "weight": 0.25, "share": None}},
    }  # fmt: skip
    board.set_vote(GROUP, {"fork": 0.75, "tree": 0.25}, "vote", shares={"fork": 0.4, "tree": 0.1})  # the bandit
    members = api.client.get(f"/groups/{GROUP}").json()["serving"]["vote"]["members"]
    assert {name: m["share"] for name, m in members.items()} == {"fork": 0.4, "tree": 0.1}


def test_a_process_without_a_board_shows_no_serving_table(make_api: ApiFactory) -> None:
    assert make_api(board=False).client.get(f"/groups/{GROUP}").json()["serving"] is None


def test_versions_carry_their_ranges_status_and_trial_and_filter_by_status(api: Api) -> None:
    listed = api.client.get(f"/groups/{GROUP}/versions").json()["versions"]
    assert [(v["id"], v["status"]) for v in listed] == [
        ("default/1", "standby"), ("default/2", "champion"), ("default/3", "candidate"), ("default/4", "retired"),
    ]  # fmt: skip
    assert listed[0]["ranges"] == [{"topic": "events", "partition": 0, "first": 0, "last": 99}]
    assert listed[0]["samples"] == 100 and listed[0]["checkpoint_sha256"]
    assert listed[2]["parent"] == "default/2" and listed[2]["checkpoint_sha256"] is None
    retired = api.client.get(f"/groups/{GROUP}/versions", params={"status": "retired"}).json()["versions"]
    assert [v["id"] for v in retired] == ["default/4"]


def test_a_version_shows_its_lineage_and_every_verdict(api: Api) -> None:
    detail = api.client.get(f"/groups/{GROUP}/versions/3").json()
    assert detail["version"]["id"] == "default/3"
    assert [v["id"] for v in detail["lineage"]] == ["default/2", "default/1"]
    verdicts = api.client.get(f"/groups/{GROUP}/versions/2").json()["verdicts"]
    assert [(v["phase"], v["evidence"]) for v in verdicts] == [("running", {"n": 50}),
                                                               ("passed", {"n": 400, "lift": 0.02})]  # fmt: skip
    missing = api.client.get(f"/groups/{GROUP}/versions/99")
    assert missing.status_code == 404 and "default/99" in missing.json()["detail"]


def test_decisions_come_a_page_at_a_time_with_the_total(api: Api) -> None:
    page = api.client.get(f"/groups/{GROUP}/decisions", params={"limit": 1}).json()
    assert (page["total"], page["skip"], page["limit"]) == (2, 0, 1)
    assert [(d["seq"], d["action"], d["version"], d["previous"]) for d in page["items"]] == [
        (0, "promote", "default/2", "default/1")
    ]
    last = api.client.get(f"/groups/{GROUP}/decisions", params={"skip": 1, "limit": 5}).json()["items"]
    assert [(d["seq"], d["action"], d["version"]) for d in last] == [(1, "refuse", "default/4")]
    assert api.client.get(f"/groups/{GROUP}/decisions", params={"skip": 9}).json()["items"] == []
    assert api.client.get(f"/groups/{GROUP}/decisions", params={"limit": 0}).status_code == 422


def _record(cid: str, offset: int, group: str = GROUP) -> CommandRecord:
    return CommandRecord(group=group, id=cid, kind="freeze", args={}, actor="ops", reason="incident",
                         outcome="applied", detail="frozen", issued_ts_ms=1, ts_ms=2,
                         source=SourceRef("test.control", 0, offset))  # fmt: skip


def test_commands_come_a_page_at_a_time_and_one_by_id_within_its_group(api: Api) -> None:
    for i, cid in enumerate("abc"):
        api.registry.record_command(_record(cid, i))
    api.registry.record_command(_record("elsewhere", 3, group="other"))
    page = api.client.get(f"/groups/{GROUP}/commands", params={"skip": 1, "limit": 1}).json()
    assert ([c["id"] for c in page["items"]], page["more"]) == (["b"], True)
    last = api.client.get(f"/groups/{GROUP}/commands", params={"skip": 2}).json()
    assert ([c["id"] for c in last["items"]], last["more"]) == (["c"], False)
    one = api.client.get(f"/groups/{GROUP}/commands/b").json()
    assert (one["outcome"], one["detail"], one["offset"], one["actor"]) == ("applied", "frozen", 1, "ops")
    assert api.client.get(f"/groups/{GROUP}/commands/elsewhere").status_code == 404
    assert api.client.get(f"/groups/{GROUP}/commands/nope").status_code == 404


def test_the_config_is_the_effective_one_with_secrets_masked(api: Api) -> None:
    config = api.client.get("/config")
    text = config.text
    assert TOKEN not in text and "hunter2" not in text
    body = config.json()
    assert body["kafka"]["control_topic"] == "test.control"
    assert body["kafka"]["producer"] == {"sasl.password": "***"}
    assert body["admin"]["token"] == "***"
    assert body["model"]["candidates"][0]["name"] == "fork"


def test_healthz_answers_and_readyz_gives_its_reasons(make_api: ApiFactory) -> None:
    readiness = Readiness(lambda: None)
    api = make_api(readiness=readiness)
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert (api.client.get("/readyz").status_code, api.client.get("/readyz").json()) == (
        200, {"ready": True, "reasons": []},
    )  # fmt: skip
    readiness.set(RECOVERING)
    readiness.set(NO_CHAMPION)
    answer = api.client.get("/readyz")
    assert (answer.status_code, answer.json()) == (503, {"ready": False, "reasons": [NO_CHAMPION, RECOVERING]})
    assert api.client.get("/healthz").status_code == 200  # liveness does not follow readiness
    readiness.clear(RECOVERING)
    readiness.clear(NO_CHAMPION)
    assert api.client.get("/readyz").status_code == 200
