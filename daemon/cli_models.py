"""``headwater models``: read and steer a running daemon through its admin API.

Every subcommand is one or two HTTP calls to ``--url`` (``HEADWATER_ADMIN_URL``; default
http://127.0.0.1:8080). Commands send the admin token from ``--token-file`` or the environment
(``HEADWATER_ADMIN_TOKEN``, or the daemon's own ``HEADWATER_ADMIN__TOKEN``), and wait ``--wait``
seconds for the outcome the train step records. ``--json`` prints what the API answered.

Exit codes: 0 done (or accepted, with no outcome yet); 1 the train step rejected the command or
it expired; 2 the API refused the request (the message says why: token, unknown group, version
or model, conflict, invalid); 3 the API or the broker could not be reached.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
import yaml

__all__ = ["models_app"]

models_app = typer.Typer(help="Read and steer a running daemon through its admin API.", no_args_is_help=True)

TOKEN_VARIABLES = ("HEADWATER_ADMIN_TOKEN", "HEADWATER_ADMIN__TOKEN")

Url = Annotated[str, typer.Option(envvar="HEADWATER_ADMIN_URL", help="the daemon's admin API")]
TokenFile = Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="file holding the admin token")]
Group = Annotated[str | None, typer.Option("--group", "-g", help="model group; default: the daemon's only one")]
Reason = Annotated[str, typer.Option("--reason", "-r", help="why: kept with the command and what it causes")]
Actor = Annotated[str | None, typer.Option(help="who asks; default: your user name")]
Wait = Annotated[float, typer.Option("--wait", min=0, max=60, help="seconds to wait for the outcome (0: do not)")]
AsJson = Annotated[bool, typer.Option("--json", help="print the API's answer as JSON")]
Skip = Annotated[int, typer.Option(min=0, help="pass over this many, from the oldest")]
Limit = Annotated[int, typer.Option(min=1, max=1000, help="show at most this many")]
DEFAULT_URL = "http://127.0.0.1:8080"


class _Api:
    def __init__(self, url: str, token_file: Path | None, wait_s: float = 0.0) -> None:
        token = token_file.read_text().strip() if token_file is not None else _token_from_env()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self.client = httpx.Client(base_url=url, headers=headers, timeout=wait_s + 15.0)

    def get(self, path: str, **params: Any) -> Any:
        return self._answer(self.client.get(path, params=params))

    def post(self, path: str, body: dict[str, Any], wait_s: float) -> Any:
        return self._answer(self.client.post(path, json=body, params={"wait_s": wait_s}))

    def group(self, given: str | None) -> str:
        if given is not None:
            return given
        groups: list[str] = self.get("/groups")["groups"]
        if len(groups) != 1:
            _fail(f"the daemon has groups {groups}: name one with --group", 2)
        return groups[0]

    def _answer(self, response: httpx.Response) -> Any:
        if not response.is_success:
            _refused(response)
        return response.json()


def _refused(response: httpx.Response) -> NoReturn:
    try:
        body = response.json()
        detail = f"{body['detail']} ({body.get('kind', 'http')})"
    except (ValueError, KeyError, TypeError):
        detail = response.text[:500]
    where = f"{response.request.method} {response.request.url.path}"
    _fail(f"{where}: {response.status_code}: {detail}", 3 if response.status_code >= 500 else 2)


def _token_from_env() -> str | None:
    return next((os.environ[v] for v in TOKEN_VARIABLES if os.environ.get(v)), None)


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _api(url: str, token_file: Path | None = None, wait_s: float = 0.0) -> Iterator[_Api]:
    api = _Api(url, token_file, wait_s)
    try:
        yield api
    except httpx.TransportError as exc:
        _fail(f"cannot reach the admin API at {url}: {exc}; is `headwater run` up, and admin.port right?", 3)
    finally:
        api.client.close()


def _when(ts_ms: int | None) -> str:
    return "-" if ts_ms is None else datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="seconds")


def _show(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


# -- reads ------------------------------------------------------------------------------------------


@models_app.command("list")
def list_groups(url: Url = DEFAULT_URL, token_file: TokenFile = None, as_json: AsJson = False) -> None:
    """The model groups the daemon trains."""
    with _api(url, token_file) as api:
        groups = api.get("/groups")
    if as_json:
        return _show(groups)
    typer.echo("\n".join(groups["groups"]))
    return None


@models_app.command()
def board(group: Group = None, url: Url = DEFAULT_URL, token_file: TokenFile = None, as_json: AsJson = False) -> None:
    """Who serves, and each live model's role, rolling accuracy, lag and trial."""
    with _api(url, token_file) as api:
        data = api.get(f"/groups/{api.group(group)}")
    if as_json:
        return _show(data)
    serving = data["serving"]
    if serving is None:
        typer.echo(f"{data['group']}: nothing serves in this process yet")
    else:
        canary = f", canary {serving['canary']} on {serving['canary_share']:.0%}" if serving["canary"] else ""
        typer.echo(f"{data['group']}: {serving['champion']} serves{canary} (table {serving['seq']})")
    for m in data["models"]:
        accuracy = "-" if m["rolling_accuracy"] is None else f"{m['rolling_accuracy']:.4f}"
        lag = "-" if m["lag_batches"] is None else str(m["lag_batches"])
        trial = ", ".join(f"{k} {v}" for k, v in m["trial"].items()) or "-"
        typer.echo(f"  {m['version']:<14} {m['role']:<9} {m['name']:<10} accuracy {accuracy:<7} lag {lag:<4} "
                   f"trial {trial}")  # fmt: skip
    return None


@models_app.command()
def versions(
    group: Group = None, status: Annotated[str | None, typer.Option(help="only this status")] = None,
    url: Url = DEFAULT_URL, token_file: TokenFile = None, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Every version: status, parent, samples, the offsets it learned from, its trial."""
    with _api(url, token_file) as api:
        data = api.get(f"/groups/{api.group(group)}/versions", **({"status": status} if status else {}))
    if as_json:
        return _show(data)
    for v in data["versions"]:
        ranges = ", ".join(f"{r['topic']}/{r['partition']}:{r['first']}-{r['last']}" for r in v["ranges"]) or "-"
        trial = ", ".join(f"{k} {p}" for k, p in v["trial"].items()) or "-"
        typer.echo(f"{v['id']:<14} {v['status']:<9} {v['name']:<10} parent {v['parent'] or '-':<14} "
                   f"samples {v['samples']:<8} trial {trial}")  # fmt: skip
        typer.echo(f"{'':<14} learned from {ranges}")
    return None


@models_app.command()
def decisions(
    group: Group = None,
    skip: Skip = 0,
    limit: Limit = 100,
    url: Url = DEFAULT_URL,
    token_file: TokenFile = None,
    as_json: AsJson = False,
) -> None:
    """The group's decisions, oldest first, with their reasons."""
    with _api(url, token_file) as api:
        page = api.get(f"/groups/{api.group(group)}/decisions", skip=skip, limit=limit)
    if as_json:
        return _show(page)
    for d in page["items"]:
        replaced = f" (was {d['previous']})" if d["previous"] else ""
        typer.echo(f"{_when(d['ts_ms'])} {d['action']:<8} {d['version']}{replaced}: {d['reason']}")
    typer.echo(f"{len(page['items'])} of {page['total']} decisions from #{skip}")
    return None


@models_app.command()
def commands(
    group: Group = None,
    skip: Skip = 0,
    limit: Limit = 100,
    url: Url = DEFAULT_URL,
    token_file: TokenFile = None,
    as_json: AsJson = False,
) -> None:
    """The commands the train step read, oldest first, with their outcomes."""
    with _api(url, token_file) as api:
        page = api.get(f"/groups/{api.group(group)}/commands", skip=skip, limit=limit)
    if as_json:
        return _show(page)
    for c in page["items"]:
        typer.echo(f"{_when(c['ts_ms'])} {c['kind']:<18} {c['outcome']:<9} by {c['actor']}: {c['detail']} "
                   f"[{c['id']}] ({c['reason']})")  # fmt: skip
    return None


# -- commands ---------------------------------------------------------------------------------------


def _issue(route: str, args: dict[str, Any], group: str | None, reason: str, actor: str | None, url: str,
           token_file: Path | None, wait: float, as_json: bool) -> None:  # fmt: skip
    body = args | {"reason": reason, "actor": actor or _user()}
    with _api(url, token_file, wait) as api:
        name = api.group(group)
        answer = api.post(f"/groups/{name}/commands/{route}", body, wait)
    if as_json:
        _show(answer)
    outcome = answer["outcome"]
    if outcome is None:
        if not as_json:
            typer.echo(f"{answer['kind']} {answer['id']}: accepted, no outcome within {wait:g} s "
                       f"(headwater models commands --group {name} shows it later)")  # fmt: skip
        return
    if not as_json:
        typer.echo(f"{answer['kind']} {answer['id']}: {outcome['outcome']}: {outcome['detail']}")
    if outcome["outcome"] in ("rejected", "expired"):
        raise typer.Exit(1)


def _user() -> str:
    try:
        return getpass.getuser()
    except OSError:  # no user name in this environment (a container without USER)
        return "cli"


Model = Annotated[str | None, typer.Argument(help="a candidate's name; none: every candidate")]


@models_app.command()
def pause(model: Model = None, *, reason: Reason, group: Group = None, actor: Actor = None, url: Url = DEFAULT_URL,
          token_file: TokenFile = None, wait: Wait = 10.0, as_json: AsJson = False) -> None:  # fmt: skip
    """A candidate (or every one) stops learning; it still scores."""
    _issue("pause", {"model": model}, group, reason, actor, url, token_file, wait, as_json)


@models_app.command()
def resume(model: Model = None, *, reason: Reason, group: Group = None, actor: Actor = None, url: Url = DEFAULT_URL,
           token_file: TokenFile = None, wait: Wait = 10.0, as_json: AsJson = False) -> None:  # fmt: skip
    """A paused candidate (or every one) learns again."""
    _issue("resume", {"model": model}, group, reason, actor, url, token_file, wait, as_json)


@models_app.command()
def freeze(*, reason: Reason, group: Group = None, actor: Actor = None, url: Url = DEFAULT_URL,
           token_file: TokenFile = None, wait: Wait = 10.0, as_json: AsJson = False) -> None:  # fmt: skip
    """Nothing is promoted, refused or rolled back; verdicts are still reported."""
    _issue("freeze", {}, group, reason, actor, url, token_file, wait, as_json)


@models_app.command()
def unfreeze(*, reason: Reason, group: Group = None, actor: Actor = None, url: Url = DEFAULT_URL,
             token_file: TokenFile = None, wait: Wait = 10.0, as_json: AsJson = False) -> None:  # fmt: skip
    """Decisions are taken again."""
    _issue("unfreeze", {}, group, reason, actor, url, token_file, wait, as_json)


def _version_id(group: str | None, version: str | None) -> str | None:
    """``7`` means ``<group>/7`` when the group is named; a full id passes as it is."""
    return f"{group}/{version}" if version is not None and version.isdigit() and group is not None else version


@models_app.command()
def promote(
    model: Annotated[str | None, typer.Argument(help="a candidate's name (or --version)")] = None, *,
    version: Annotated[str | None, typer.Option(help="a version with a checkpoint, e.g. default/7")] = None,
    skip_golden: Annotated[bool, typer.Option(help="promote even if the golden set is not passed")] = False,
    reason: Reason, group: Group = None, actor: Actor = None, url: Url = DEFAULT_URL, token_file: TokenFile = None,
    wait: Wait = 10.0, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Promote a candidate's model as it is now, or a version with a checkpoint."""
    args = {"model": model, "version": _version_id(group, version), "skip_golden": skip_golden}
    _issue("promote", args, group, reason, actor, url, token_file, wait, as_json)


@models_app.command()
def rollback(
    version: Annotated[str | None, typer.Option(help="a version that served before; default: the standby")] = None,
    *, reason: Reason, group: Group = None, actor: Actor = None, url: Url = DEFAULT_URL,
    token_file: TokenFile = None, wait: Wait = 10.0, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Serve the standby again, or a version that served before."""
    _issue("rollback", {"version": _version_id(group, version)}, group, reason, actor, url, token_file, wait, as_json)


@models_app.command()
def retire(model: Annotated[str, typer.Argument(help="the candidate to retire")], *, reason: Reason,
           group: Group = None, actor: Actor = None, url: Url = DEFAULT_URL, token_file: TokenFile = None,
           wait: Wait = 10.0, as_json: AsJson = False) -> None:  # fmt: skip
    """The candidate stops learning and is never promoted (never the champion)."""
    _issue("retire", {"model": model}, group, reason, actor, url, token_file, wait, as_json)


@models_app.command("add-candidate")
def add_candidate(
    candidate: Annotated[str, typer.Argument(help="as in model.candidates: '{name: wide, learner: river-logreg}'")],
    *, reason: Reason, group: Group = None, actor: Actor = None, url: Url = DEFAULT_URL,
    token_file: TokenFile = None, wait: Wait = 10.0, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Add a candidate from a fragment written as in the config file (YAML or JSON)."""
    try:
        fragment = yaml.safe_load(candidate)
    except yaml.YAMLError as exc:
        _fail(f"the candidate is not YAML or JSON: {exc}", 2)
    if not isinstance(fragment, dict):
        _fail(f"the candidate must be a mapping such as '{{name: wide, learner: river-logreg}}', not {candidate!r}", 2)
    _issue("add-candidate", {"candidate": fragment}, group, reason, actor, url, token_file, wait, as_json)


@models_app.command()
def replay(
    candidate: Annotated[str, typer.Argument(help="as in model.candidates: '{name: replayed, learner: river-logreg}'")],
    ranges: Annotated[list[str], typer.Argument(help="stretches as topic/partition/first-last, e.g. events/0/0-999")],
    *, reason: Reason, group: Group = None, actor: Actor = None, url: Url = DEFAULT_URL,
    token_file: TokenFile = None, wait: Wait = 10.0, as_json: AsJson = False,
) -> None:  # fmt: skip
    """A new candidate learns stretches of the input topics, read again, then joins the group."""
    try:
        fragment = yaml.safe_load(candidate)
    except yaml.YAMLError as exc:
        _fail(f"the candidate is not YAML or JSON: {exc}", 2)
    if not isinstance(fragment, dict):
        _fail(f"the candidate must be a mapping such as '{{name: replayed}}', not {candidate!r}", 2)
    stretches = []
    for text in ranges:
        topic, _, rest = text.rpartition("/")
        topic, _, partition = topic.rpartition("/")
        first, _, last = rest.partition("-")
        if not (topic and partition.isdigit() and first.isdigit() and last.isdigit()):
            _fail(f"{text!r} is not topic/partition/first-last (e.g. headwater.events/0/0-999)", 2)
        stretches.append({"topic": topic, "partition": int(partition), "first": int(first), "last": int(last)})
    _issue("replay", {"candidate": fragment, "ranges": stretches}, group, reason, actor, url, token_file, wait, as_json)


@models_app.command("canary-ceiling")
def canary_ceiling(
    share: Annotated[float, typer.Argument(min=0.0, max=1.0, help="the most the canary serves; 0: no canary")], *,
    reason: Reason, group: Group = None, actor: Actor = None, url: Url = DEFAULT_URL, token_file: TokenFile = None,
    wait: Wait = 10.0, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Cap the canary's share of the keys (0 takes the canary route off)."""
    _issue("canary-ceiling", {"share": share}, group, reason, actor, url, token_file, wait, as_json)


@models_app.command("release-quarantine")
def release_quarantine(
    *, drop: Annotated[bool, typer.Option("--drop", help="drop the held labels instead of learning them")] = False,
    reason: Reason, group: Group = None, actor: Actor = None, url: Url = DEFAULT_URL, token_file: TokenFile = None,
    wait: Wait = 10.0, as_json: AsJson = False,
) -> None:  # fmt: skip
    """End the label quarantine: learn the labels it holds (or drop them with --drop)."""
    _issue("release-quarantine", {"learn": not drop}, group, reason, actor, url, token_file, wait, as_json)
