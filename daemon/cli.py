"""The ``headwater`` command line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from daemon.cli_models import models_app
from daemon.config import ConfigError, Settings, load_settings, mask_secrets, with_overrides
from daemon.kafka_local import KafkaLocal, KafkaLocalError
from learners import LearnerError

app = typer.Typer(help="Headwater: keep models learning from a Kafka stream.", no_args_is_help=True)
kafka_app = typer.Typer(help="A local single-node Apache Kafka broker for development.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics Headwater uses.", no_args_is_help=True)
registry_app = typer.Typer(help="Model versions, their lineage and the decisions taken.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.add_typer(registry_app, name="registry")
app.add_typer(models_app, name="models")

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="YAML config file", exists=True, dir_okay=False)]


@contextmanager
def _clear_errors() -> Iterator[None]:
    """A bad config, learner or local broker ends the command with its message and exit code 2."""
    try:
        yield
    except (ConfigError, LearnerError, KafkaLocalError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _settings(config: Path, **overrides: object) -> Settings:
    with _clear_errors():
        return load_settings(config, **overrides)


@app.command()
def run(
    config: ConfigOption,
    workers: Annotated[
        int | None, typer.Option(help="worker threads; wins over runtime.workers in the file and the environment")
    ] = None,
    processes: Annotated[
        int, typer.Option(min=1, help="start a cluster of this many processes on this machine (Bytewax cluster mode)")
    ] = 1,
    process_id: Annotated[
        int | None, typer.Option(help="this process's index in --addresses (a cluster started elsewhere, e.g. pods)")
    ] = None,
    addresses: Annotated[
        str | None, typer.Option(help="host:port of every process of the cluster, separated by ';'")
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Run the daemon until SIGTERM/SIGINT (or the end of the topics with runtime.tail: false).

    With --processes N, N processes serve the input's partitions between them and one trains the
    group (Bytewax's cluster mode); Bytewax's BYTEWAX_PROCESS_ID and BYTEWAX_ADDRESSES (or a
    StatefulSet's pod name and hostfile) place a process started by Kubernetes.
    """
    from daemon.cluster import Member, run_local_cluster
    from daemon.runner import run_daemon

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with _clear_errors():
        settings = load_settings(config)
        if workers is not None:
            settings = with_overrides(settings, runtime={"workers": workers})
        if processes > 1:
            if process_id is not None or addresses is not None:
                raise ConfigError("--processes starts a local cluster: it takes no --process-id or --addresses")
            extra = ["--log-level", log_level] + (["--workers", str(workers)] if workers is not None else [])
            sys.exit(run_local_cluster(config, processes, extra))
        try:
            member = Member.parse(process_id, addresses or "") if process_id is not None else Member.from_env()
        except ValueError as exc:
            raise ConfigError(f"cluster: {exc}") from None
        run_daemon(settings, member=member)


@app.command("check-config")
def check_config(config: ConfigOption) -> None:
    """Validate a config file (with the environment applied) and print the result."""
    from daemon.runner import check_learner

    settings = _settings(config)
    with _clear_errors():
        check_learner(settings)
    typer.echo(json.dumps(mask_secrets(settings.model_dump(mode="json")), indent=2))


@app.command()
def demo(
    bootstrap_servers: Annotated[str | None, typer.Option(help="use this Kafka; unset: start the local broker")] = None,
    events: Annotated[int, typer.Option(help="events to stream")] = 40_000,
    rate: Annotated[float, typer.Option(help="events per second")] = 4000.0,
    learner: Annotated[
        str, typer.Option(help="a built-in (river-logreg, torch-mlp, moa-arf, ...) or pkg.mod:factory")
    ] = ("river-logreg"),
    workers: Annotated[int, typer.Option(help="Bytewax workers in the daemon")] = 2,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 600.0,
    moa: Annotated[
        bool, typer.Option(help="add MOA's Adaptive Random Forest (moa-arf) as a candidate: the moa extra and a JDK")
    ] = False,
    keep_topics: Annotated[
        bool, typer.Option(help="keep the run's topics for inspection (default: deleted when the demo ends)")
    ] = False,
    vote: Annotated[
        bool, typer.Option(help="the candidates serve a weighted vote (model.vote); --no-vote: the champion alone")
    ] = True,
) -> None:
    """Stream a drifting synthetic workload with malformed records through a live daemon."""
    from daemon.demo import DemoOptions, run_demo

    options = DemoOptions(
        bootstrap_servers=bootstrap_servers, events=events, rate=rate, learner=learner, workers=workers,
        timeout_s=timeout, moa=moa, keep_topics=keep_topics, vote=vote,
    )  # fmt: skip
    sys.exit(run_demo(options))


@kafka_app.command("up")
def kafka_up() -> None:
    """Start the broker (no-op if it runs), fetching the jars from Maven Central the first time."""
    _kafka("up")


@kafka_app.command("down")
def kafka_down() -> None:
    """Stop the broker."""
    _kafka("down")


@kafka_app.command("status")
def kafka_status() -> None:
    """Say whether the broker is up; exit 1 if not."""
    _kafka("status")


@kafka_app.command("reset")
def kafka_reset() -> None:
    """Stop the broker and delete its data."""
    _kafka("reset")


def _kafka(action: str) -> None:
    kafka = KafkaLocal.from_env()
    with _clear_errors():
        if action == "status":
            if not kafka.status():
                raise typer.Exit(1)
            return
        getattr(kafka, action)()


@topics_app.command("create")
def topics_create(config: ConfigOption) -> None:
    """Create the config's topics (events, labels, predictions, dead letters, model events)."""
    from daemon.topics import ensure_topics

    settings = _settings(config)
    k = settings.kafka
    created = ensure_topics(k.bootstrap_servers, settings.topics().all(), k.partitions, k.replication_factor,
                            client=settings.kafka_config("admin"))  # fmt: skip
    typer.echo(f"created: {', '.join(created) or 'nothing (all exist)'}")


GroupOption = Annotated[str | None, typer.Option(help="model group; default: model.group of the config")]


@registry_app.command("versions")
def registry_versions(config: ConfigOption, group: GroupOption = None) -> None:
    """Every version of a group: status, parent, samples learned, and the offset ranges it learned from."""
    from daemon.registry import SqliteRegistry, gaps

    settings = _settings(config)
    name = group or settings.model.group
    with SqliteRegistry(settings.registry.path) as registry:
        for v in registry.versions(name):
            ranges = ", ".join(f"{r.topic}/{r.partition}:{r.first}-{r.last}" for r in v.ranges) or "-"
            holes = len(gaps(v.ranges))
            typer.echo(
                f"{v.id:<14} {v.status:<9} {v.name:<10} parent {v.parent or '-':<14} {v.framework:<6} "
                f"samples {v.samples:<8} {'checkpoint ' + v.checkpoint_sha256[:12] if v.checkpoint_sha256 else ''}"
            )
            typer.echo(f"{'':<14} learned from {ranges}" + (f" ({holes} gaps)" if holes else ""))


@registry_app.command("decisions")
def registry_decisions(config: ConfigOption, group: GroupOption = None) -> None:
    """Every decision on a group (promote, refuse, rollback, retire), oldest first, with its reason."""
    from daemon.registry import SqliteRegistry

    settings = _settings(config)
    with SqliteRegistry(settings.registry.path) as registry:
        for d in registry.decisions(group or settings.model.group):
            replaced = f" (was {d.previous})" if d.previous else ""
            when = datetime.fromtimestamp(d.ts_ms / 1000, UTC).isoformat(timespec="milliseconds")
            typer.echo(f"{when} {d.action:<8} {d.version}{replaced}: {d.reason}")


if __name__ == "__main__":
    app()
