"""``headwater demo``: a live daemon on a drifting, slightly broken synthetic stream.

1. start the local broker unless a bootstrap server is given; create fresh topics;
2. start ``headwater run`` as a child process, as an operator would;
3. stream the workload (`daemon.workload`): SEA events whose concept changes half-way, labels
   inline or delayed on the labels topic, malformed records and labels for unknown events;
4. watch the output topics live: events/s, the champion that serves and its accuracy, the
   candidates' trials (a fork of the champion, a Hoeffding tree on canary traffic, and a
   deliberately slow learner that should be refused; with ``--moa``, MOA's Adaptive Random Forest
   in shadow too), every promotion, refusal and rollback as it
   happens, and dead letters by reason. By default the candidates serve together as a weighted
   vote (`model.vote`; ``--no-vote``: the champion alone), and the weights are shown as they move;
5. when every event is accounted for, stop the daemon with SIGTERM (graceful), and print a
   summary: events in, predictions out, dead letters, served accuracy before/just after the
   drift/at the end, the vote's weights then, and the decisions with their reasons.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import httpx
import orjson
import yaml
from confluent_kafka import Consumer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from daemon.kafka_client import make_producer, produce_all
from daemon.kafka_local import KafkaLocal
from daemon.topics import delete_topics, ensure_topics
from daemon.workload import CLASSES, FEATURES, Workload, WorkloadSpec
from dataflows.records import DeadLetterReason

__all__ = ["DemoOptions", "DemoReport", "run_demo"]

PHASE = 2000  # events in each accuracy window of the summary


@dataclass(frozen=True)
class DemoOptions:
    bootstrap_servers: str | None = None
    events: int = 40_000
    rate: float = 4000.0
    learner: str = "river-logreg"
    workers: int = 2
    timeout_s: float = 600.0
    moa: bool = False  # MOA's Adaptive Random Forest as one more candidate (the moa extra and a JDK)
    keep_topics: bool = False  # the run's topics are throwaway: deleted at the end unless kept
    vote: bool = True  # the candidates serve a weighted vote (`model.vote`); False: the champion alone


@dataclass
class DemoReport:
    """What the demo saw on the output topics."""

    produced: int = 0
    predictions: dict[str, int] = field(default_factory=dict)  # event id -> predicted class
    dead_letters: collections.Counter[str] = field(default_factory=collections.Counter)
    last_model_event: dict[str, object] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    # (monotonic time, predictions so far), sampled by the live view: the recent rate
    progress: collections.deque[tuple[float, int]] = field(default_factory=lambda: collections.deque(maxlen=12))
    rolling_history: list[float] = field(default_factory=list)  # champion's rolling accuracy, one per report
    decisions: list[dict[str, object]] = field(default_factory=list)
    trials: dict[str, dict[str, object]] = field(default_factory=dict)  # candidate -> its latest verdict
    # the label quarantine's records but "held", each with how many predictions were out when it was read
    quarantine: list[tuple[int, dict[str, object]]] = field(default_factory=list)
    learned: collections.Counter[str] = field(default_factory=collections.Counter)  # model -> examples learned
    routes: collections.Counter[str] = field(default_factory=collections.Counter)
    serving: str = "-"
    # the vote's records (model events), each with how many predictions were out when it was read
    votes: list[tuple[int, dict[str, object]]] = field(default_factory=list)

    def weights(self, before: int | None = None) -> str:
        """The vote's weights by member, heaviest first, and what served: as the last record read
        (``before``: read before that many predictions were out) said."""
        shown = [r for n, r in self.votes if before is None or n < before]
        if not shown:
            return "-"
        record = shown[-1]
        weights = cast(dict[str, float], record["weights"])
        named = ", ".join(f"{m} {w:.2f}" for m, w in sorted(weights.items(), key=lambda mw: -mw[1]))
        return f"{named}  (serving: {record['choice']})"

    def recent_rate(self) -> float:
        """Predictions per second over the last ~3 s."""
        now = (time.monotonic(), len(self.predictions))
        self.progress.append(now)
        (t0, n0) = self.progress[0]
        return (now[1] - n0) / (now[0] - t0) if now[0] > t0 else 0.0

    def accuracy(self, workload: Workload, start: int, stop: int) -> float | None:
        ids = [i for i in workload.order[start:stop] if i in self.predictions]
        if not ids:
            return None
        return sum(self.predictions[i] == workload.truth[i] for i in ids) / len(ids)


def run_demo(options: DemoOptions) -> int:
    console = Console()
    bootstrap = options.bootstrap_servers
    if bootstrap is None:
        kafka = KafkaLocal.from_env()
        kafka.up()
        bootstrap = kafka.bootstrap
    run_id = uuid.uuid4().hex[:8]
    topics = {
        k: f"headwater-demo-{run_id}.{k}" for k in ("events", "labels", "predictions", "dead-letters", "model-events")
    }
    serving_topic = f"headwater-demo-{run_id}.serving"  # the daemon makes it (one partition, compacted)
    control_topic = f"headwater-demo-{run_id}.control"  # the daemon makes it (one partition)
    quarantine_topic = f"headwater-demo-{run_id}.quarantine"  # the daemon makes it
    admin_port = _free_port()
    spec = WorkloadSpec(n_events=options.events, drift_at=options.events // 2)
    workload = Workload(spec)
    workdir = Path(tempfile.mkdtemp(prefix="headwater-demo-"))
    config = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "events_topic": topics["events"],
            "labels_topic": topics["labels"],
            "predictions_topic": topics["predictions"],
            "dead_letter_topic": topics["dead-letters"],
            "model_events_topic": topics["model-events"],
            "serving_topic": serving_topic,
            "control_topic": control_topic,
            "quarantine_topic": quarantine_topic,
        },
        "schema": {
            "features": list(FEATURES),
            "classes": list(CLASSES),
            "max_event_bytes": spec.max_event_bytes,
        },
        "batching": {"max_size": 512, "max_wait_ms": 20},
        "labels": {"window_s": 60},
        "model": {
            "learner": options.learner,
            "rolling_window": 1000,
            "candidates": [
                {"name": "fork"},  # the champion, learning on: promoted when it is better
                {"name": "tree", "learner": "river-hoeffding", "gate": "canary"},  # serves a share of keys
                {"name": "slow", "learner": "river-logreg", "params": {"lr": 0.0005}},  # should be refused
                *([{"name": "arf", "learner": "moa-arf"}] if options.moa else []),  # MOA's forest, in shadow
            ],
            "vote": {"enabled": options.vote},  # the candidates serve together, weighted by how they do
        },
        "promotion": {"canary_min_samples": 100},
        "registry": {"path": str(workdir / "registry")},
        "runtime": {"workers": options.workers},
        "admin": {"host": "127.0.0.1", "port": admin_port},  # a free port: the demo never fights over 8080
    }
    ensure_topics(bootstrap, topics.values(), partitions=4)
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = workdir / "daemon.log"
    console.print(f"[bold]Headwater demo[/] run {run_id}: {options.events} events at {options.rate:.0f}/s, "
                  f"drift at event {spec.drift_at}, learner {options.learner}, {options.workers} workers"
                  + (", MOA's forest (moa-arf) as a candidate" if options.moa else ""))  # fmt: skip
    console.print(f"config {config_path}, daemon log {log_path}")

    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "run", "--config", str(config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=_env_without_setting_overrides(),
        )  # fmt: skip
    report = DemoReport()
    items = list(workload.items())
    n_events = sum(1 for i in items if i.kind == "events")
    expected_dead = sum(1 for i in items if i.expect is not None)
    # Everything but the unmatched labels is accounted for while the daemon runs; those are
    # dead-lettered when the window passes, or when the daemon stops.
    expected_before_stop = spec.n_events + expected_dead - spec.unmatched_labels

    def produce() -> None:
        producer = make_producer(bootstrap)
        by_kind = {"events": topics["events"], "labels": topics["labels"]}

        def sent(n: int) -> None:
            report.produced = n

        report.produced = produce_all(producer, ((by_kind[i.kind], i.key, i.value) for i in items), options.rate, sent)

    # A live stream into a ready daemon: the events flow once its champion serves (/readyz), so
    # none piles up while it starts and the first ones are not served in bulk by an untrained model.
    if not _ready(f"http://127.0.0.1:{admin_port}/readyz", daemon, options.timeout_s):
        console.print(f"[red]the daemon did not become ready; see {log_path}")
        if daemon.poll() is None:
            daemon.kill()
        return 1
    console.print(f"admin API: http://127.0.0.1:{admin_port} (try /readyz, /groups/default, /metrics)")
    producer_thread = threading.Thread(target=produce, name="demo-producer", daemon=True)
    producer_thread.start()

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"demo-{run_id}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topics["predictions"], topics["dead-letters"], topics["model-events"], quarantine_topic])
    deadline = time.monotonic() + options.timeout_s
    stopped = False
    try:
        with Live(
            _table(report, options, n_events, spec.drift_at, stopped), console=console, refresh_per_second=4
        ) as live:
            while time.monotonic() < deadline:
                _consume(consumer, topics, report)
                live.update(_table(report, options, n_events, spec.drift_at, stopped))
                accounted = len(report.predictions) + sum(
                    n for r, n in report.dead_letters.items() if r != DeadLetterReason.LABEL_UNMATCHED
                )
                if not stopped and not producer_thread.is_alive() and accounted >= expected_before_stop:
                    # Graceful: drains the micro-batches, flushes, dead-letters the waiting labels.
                    daemon.send_signal(signal.SIGTERM)
                    stopped = True
                if stopped and daemon.poll() is not None and sum(report.dead_letters.values()) >= expected_dead:
                    break
                if daemon.poll() is not None and not stopped:
                    console.print(f"[red]the daemon exited with code {daemon.returncode}; see {log_path}")
                    return 1
    finally:
        consumer.close()
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        if options.keep_topics:
            console.print(
                f"topics kept: {', '.join([*topics.values(), serving_topic, control_topic, quarantine_topic])}"
            )
        else:
            delete_topics(bootstrap, [*topics.values(), serving_topic, control_topic, quarantine_topic])
    _summary(console, report, workload, spec, n_events, expected_dead)
    console.print(f"every decision with its full reason: headwater registry decisions --config {config_path}")
    complete = len(report.predictions) == spec.n_events and sum(report.dead_letters.values()) == expected_dead
    if not complete:
        console.print("[red]not every event was accounted for: see the summary above")
    return 0 if complete and daemon.returncode == 0 else 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ready(url: str, daemon: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Whether the daemon answered ``/readyz`` with 200 before it exited or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and daemon.poll() is None:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.1)
    return False


def _env_without_setting_overrides() -> dict[str, str]:
    # HEADWATER_SECTION__FIELD variables would override the demo's own config in the daemon.
    return {k: v for k, v in os.environ.items() if not (k.startswith("HEADWATER_") and "__" in k)}


def _consume(consumer: Consumer, topics: dict[str, str], report: DemoReport) -> None:
    for msg in consumer.consume(2000, 0.2):
        if msg.error() is not None:
            continue
        body = orjson.loads(msg.value() or b"{}")
        topic = msg.topic()
        if topic == topics["predictions"]:
            report.predictions[body["id"]] = body["prediction"]
            report.routes[body["route"]] += 1
            if body["route"] == "champion":
                report.serving = body["version"]
        elif topic == topics["dead-letters"]:
            report.dead_letters[body["reason"]] += 1
        elif body.get("type") == "report" and body.get("model") != "champion":
            report.learned[str(body["model"])] += int(body.get("n_learned") or 0)
        elif body.get("type") == "vote":
            report.votes.append((len(report.predictions), body))
        elif body.get("type") == "quarantine" and body.get("action") != "held":
            report.quarantine.append((len(report.predictions), body))
        elif body.get("type") == "report" and body.get("model") == "champion":
            report.last_model_event = body
            if isinstance(body.get("rolling_accuracy"), float):
                report.rolling_history.append(body["rolling_accuracy"])
        elif body.get("type") == "verdict" and body.get("model") != "standby":
            report.trials[str(body["model"])] = body
        elif body.get("type") == "decision":
            report.decisions.append(body)


def _table(report: DemoReport, options: DemoOptions, n_events: int, drift_at: int, stopped: bool) -> Table:
    elapsed = max(time.monotonic() - report.started, 1e-9)
    me = report.last_model_event
    table = Table(title="Headwater demo (live)", show_header=False)
    status = "stopping the daemon" if stopped else ("running" if report.predictions else "starting the daemon")
    table.add_row("elapsed", f"{elapsed:6.1f} s  ({status})")
    table.add_row("messages produced", f"{report.produced}  (drift at event {drift_at})")
    table.add_row("predictions out", f"{len(report.predictions)} / {n_events}  ({report.recent_rate():,.0f} events/s)")
    table.add_row("champion serving", f"{report.serving}  ({options.learner}, frozen: it never learns while it serves)")
    table.add_row(
        "champion's accuracy",
        _pct(me.get("accuracy")) + "  (rolling 1000: " + _pct(me.get("rolling_accuracy")) + ")",
    )
    table.add_row("rolling accuracy, 50%→100%", _sparkline(report.rolling_history, width=60))
    table.add_row("served by route", ", ".join(f"{r}: {n}" for r, n in sorted(report.routes.items())) or "-")
    if options.vote:
        table.add_row("vote weights", report.weights())
    for name, verdict in sorted(report.trials.items()):
        table.add_row(f"trial: {name}", f"{verdict['version']} {verdict['evaluator']} {verdict['phase']}")
    shown = [d for d in report.decisions if d["action"] in ("promote", "rollback", "refuse")]
    for decision in shown[-4:]:
        table.add_row("decision", _decision_line(decision, 110))
    table.add_row("waiting for labels", f"{me.get('pending_features', 0)} events")
    table.add_row("dead letters", ", ".join(f"{r}: {n}" for r, n in sorted(report.dead_letters.items())) or "0")
    return table


def _summary(console: Console, report: DemoReport, workload: Workload, spec: WorkloadSpec, n_events: int,
             expected_dead: int) -> None:  # fmt: skip
    drift, n = spec.drift_at, spec.n_events
    table = Table(title="Headwater demo: summary", show_header=False)
    table.add_row("events in (valid + malformed)", f"{n_events}  ({n} valid, {n_events - n} malformed)")
    table.add_row("predictions out", f"{len(report.predictions)}")
    table.add_row("dead letters", f"{sum(report.dead_letters.values())} (expected {expected_dead}): "
                  + ", ".join(f"{r}={c}" for r, c in sorted(report.dead_letters.items())))  # fmt: skip
    table.add_row(f"accuracy before the drift (events {drift - PHASE}..{drift})",
                  _pct(report.accuracy(workload, drift - PHASE, drift)))  # fmt: skip
    table.add_row(f"accuracy just after (events {drift}..{drift + PHASE})",
                  _pct(report.accuracy(workload, drift, drift + PHASE)))  # fmt: skip
    table.add_row(f"accuracy at the end (events {n - PHASE}..{n})", _pct(report.accuracy(workload, n - PHASE, n)))
    table.add_row("champions' prequential accuracy (all labelled)", _pct(report.last_model_event.get("accuracy")))
    table.add_row("served by route", ", ".join(f"{r}: {n}" for r, n in sorted(report.routes.items())) or "-")
    if report.votes:  # as read when that many predictions were out (about that many events)
        table.add_row(f"vote weights before the drift (~event {drift})", report.weights(drift))
        table.add_row(f"vote weights just after (~event {drift + PHASE})", report.weights(drift + PHASE))
        table.add_row("vote weights at the end", report.weights())
    for n_out, record in report.quarantine:  # a loss spike or a label shift: labels held back, and how it ended
        table.add_row(f"label quarantine {record['action']} (~event {n_out})",
                      f"{record['examples']} labels: {record['reason']}")  # fmt: skip
    for name, verdict in sorted(report.trials.items()):
        table.add_row(f"last trial of {name}", f"{verdict['version']} {verdict['evaluator']} {verdict['phase']}")
    learned = ", ".join(f"{name}: {n}" for name, n in sorted(report.learned.items()) if name != "standby")
    table.add_row("labelled examples learned", learned or "-")
    elapsed = time.monotonic() - report.started
    table.add_row("wall time", f"{elapsed:.1f} s")
    console.print(table)
    counts = collections.Counter(str(d["action"]) for d in report.decisions)
    decisions = Table(title=f"Decisions ({', '.join(f'{a}: {n}' for a, n in sorted(counts.items()))})")
    decisions.add_column("action", no_wrap=True, min_width=8)
    decisions.add_column("version", no_wrap=True, min_width=10)
    decisions.add_column("replaced", no_wrap=True, min_width=10)
    decisions.add_column("reason", no_wrap=True)
    room = max(30, console.width - 48)
    for d in report.decisions:  # in the order they were taken (model events are keyed by group)
        if d["action"] == "retire":
            continue  # housekeeping: standbys after probation, replaced canary snapshots
        reason = str(d["reason"])
        reason = reason if len(reason) <= room else reason[: room - 1] + "…"
        decisions.add_row(str(d["action"]), str(d["version"]), str(d.get("previous") or ""), reason)
    console.print(decisions)
    console.print("(retirements — standbys after probation, replaced canary snapshots — are left out here)")


def _decision_line(decision: dict[str, object], width: int) -> str:
    previous = f" (was {decision['previous']})" if decision.get("previous") else ""
    line = f"{decision['action']} {decision['version']}{previous}: {decision['reason']}"
    return line if len(line) <= width else line[: width - 1] + "…"


def _sparkline(values: list[float], width: int) -> str:
    """The last ``width`` values (resampled) as bars from 50% to 100%."""
    if not values:
        return ""
    step = max(1, len(values) // width)
    sampled = values[::step][-width:]
    bars = "▁▂▃▄▅▆▇█"
    return "".join(bars[min(len(bars) - 1, max(0, int((v - 0.5) * 2 * len(bars))))] for v in sampled)


def _pct(value: object) -> str:
    return f"{100 * value:5.1f}%" if isinstance(value, float) else "  -  "
