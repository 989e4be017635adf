"""Operators' commands on the real broker: written to the control topic as the admin API writes
them, applied by the running daemon in order with the data, each leaving a ``command`` record on
the model-events topic. Predictions name a promoted or rolled-back version at once; a paused
candidate's lineage has a gap exactly over the stretch; a frozen group decides nothing on its own;
a canary ceiling of 0 takes the canary route off; a replayed candidate's lineage starts with
the stretches it replayed."""

from __future__ import annotations

import collections
import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from daemon.config import Settings
from daemon.kafka_client import make_producer, produce_all, read_all, read_until
from daemon.registry import SqliteRegistry
from daemon.topics import TopicError, delete_topics, ensure_topics, require_one_partition
from daemon.workload import WorkItem, Workload, WorkloadSpec
from dataflows.control import encode_command, new_command
from tests.integration.conftest import BackgroundDaemon, SettingsFactory

pytestmark = pytest.mark.kafka

RATE = 1500  # messages/s: a live stream
# Labelled inline, no malformed record: every job covers a contiguous stretch of each partition.
SPEC = WorkloadSpec(n_events=9_000, drift_at=9_000, inline_share=1.0, delayed_share=0.0, malformed_every=0,
                    unmatched_labels=0)  # fmt: skip
QUIET = {"min_samples": 5000, "max_samples": 20000, "probation_samples": 5000}


class Live:
    """A tailing daemon fed the workload in stretches, and an operator's commands between them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        k = settings.kafka
        self.topics = settings.topics()
        self.by_kind = {"events": k.events_topic, "labels": str(k.labels_topic)}
        self.items: Iterator[WorkItem] = iter(Workload(SPEC).items())
        self.producer = make_producer(k.bootstrap_servers)
        self.daemon = BackgroundDaemon(settings).start()
        self.sent = 0

    def feed(self, events: int) -> None:
        """Produce the next ``events`` messages at ``RATE``."""
        part = list(itertools.islice(self.items, events))
        produce_all(self.producer, ((self.by_kind[i.kind], i.key, i.value) for i in part), RATE)
        self.sent += sum(i.kind == "events" for i in part)

    def command(self, kind: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Issue a command; return its record from the model-events topic (bounded wait)."""
        cmd = new_command(self.settings.model.group, kind, args, actor="it", reason=f"integration test: {kind}",
                          ts_ms=int(time.time() * 1000))  # fmt: skip
        out = encode_command(cmd, str(self.topics.control))
        produce_all(self.producer, [(out.topic, out.key, out.value)])

        def found(msgs: list[Any]) -> bool:
            return any(_body(m).get("type") == "command" and _body(m).get("id") == cmd.id for m in msgs)

        seen = read_until(self.settings.kafka.bootstrap_servers, [self.topics.model_events], found, timeout_s=60)
        records = [b for b in map(_body, seen) if b.get("type") == "command" and b.get("id") == cmd.id]
        assert records, f"no record of command {kind} {cmd.id} within 60 s"
        return records[0]

    def finish(self) -> dict[str, list[dict[str, Any]]]:
        k = self.settings.kafka
        read_until(k.bootstrap_servers, [k.predictions_topic], lambda m: len(m) >= self.sent, timeout_s=120)
        assert self.daemon.stop(timeout_s=60), "the daemon did not stop within 60 s"
        assert self.daemon.errors == []
        out: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for m in read_all(k.bootstrap_servers, [k.predictions_topic, k.model_events_topic]):
            out[m.topic() or ""].append(_body(m))
        return {"predictions": out[k.predictions_topic], "events": out[k.model_events_topic]}


def _body(msg: Any) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(msg.value() or b"{}")
    return body


def _served_after(predictions: list[dict[str, Any]], ts_ms: int, until_ms: int | None = None) -> set[str]:
    return {p["version"] for p in predictions if p["predicted_ts_ms"] > ts_ms
            and (until_ms is None or p["predicted_ts_ms"] < until_ms)}  # fmt: skip


def test_promote_and_rollback_by_command_reach_serving_at_once(fresh_settings: SettingsFactory) -> None:
    settings = fresh_settings(runtime={"tail": True, "workers": 1}, promotion=QUIET)
    live = Live(settings)
    try:
        frozen = live.command("freeze")
        live.feed(2000)
        first = live.command("promote", {"model": "fork", "skip_golden": True})
        live.feed(2000)
        second = live.command("promote", {"model": "fork", "skip_golden": True})
        live.feed(1500)
        back = live.command("rollback")
        live.feed(1500)
    finally:
        out = live.finish()
    assert [r["outcome"] for r in (frozen, first, second, back)] == ["applied"] * 4, [first, second, back]
    decisions = [e for e in out["events"] if e["type"] == "decision"]
    # Frozen: every decision after the freeze is one a command asked for (or what it entailed).
    caused = [d for d in decisions if d["ts_ms"] >= frozen["ts_ms"]]
    promotes = [d for d in caused if d["action"] in ("promote", "rollback")]
    assert [(d["action"], d["evidence"].get("command")) for d in promotes] == [
        ("promote", first["id"]), ("promote", second["id"]), ("rollback", back["id"])]  # fmt: skip
    v1, v2, v3 = (d["version"] for d in promotes)
    assert v3 == v1  # rolled back to the standby: the version the second promotion replaced
    # Serving follows at once: what was predicted after each decision (plus two batch windows) names it.
    slack = 2 * settings.batching.max_wait_ms + 50
    preds = out["predictions"]
    assert _served_after(preds, promotes[0]["ts_ms"] + slack, promotes[1]["ts_ms"]) == {v1}
    assert _served_after(preds, promotes[1]["ts_ms"] + slack, promotes[2]["ts_ms"]) == {v2}
    assert _served_after(preds, promotes[2]["ts_ms"] + slack) == {v3}
    with SqliteRegistry(settings.registry.path) as registry:
        assert registry.champion(settings.model.group).id == v3  # type: ignore[union-attr]
        assert [c.outcome for c in registry.commands(settings.model.group)] == ["applied"] * 4


def test_pause_resume_ceiling_add_and_retire_on_a_live_flow(fresh_settings: SettingsFactory) -> None:
    candidates = [{"name": "fork"}, {"name": "alt", "learner": "river-logreg", "params": {"lr": 0.05},
                                     "gate": "canary"}]  # fmt: skip
    settings = fresh_settings(runtime={"tail": True, "workers": 1}, promotion=QUIET,
                              model={"candidates": candidates})  # fmt: skip
    live = Live(settings)
    try:
        live.command("freeze")  # nothing decided on its own: the fork keeps one version throughout
        live.feed(1500)
        pause = live.command("pause", {"model": "fork"})
        live.feed(1500)
        resume = live.command("resume", {"model": "fork"})
        live.feed(1500)
        ceiling = live.command("set_canary_ceiling", {"share": 0.0})
        live.feed(1500)
        added = live.command("add_candidate", {"candidate": {"name": "extra"}})
        live.feed(500)
        retired = live.command("retire", {"model": "extra"})
        bad = live.command("retire", {"model": "champion"})
        live.feed(500)
    finally:
        out = live.finish()
    assert [r["outcome"] for r in (pause, resume, ceiling, added, retired)] == ["applied"] * 5
    assert bad["outcome"] == "rejected" and "not a candidate" in bad["detail"]

    reports = [e for e in out["events"] if e["type"] == "report" and e["model"] == "fork" and e["n_labelled"]]
    assert len({r["version"] for r in reports}) == 1
    paused = [r for r in reports if not r["n_learned"]]
    assert paused, "no batch was scored while the fork was paused"
    # Paused exactly between the two commands: the batches it scored and did not learn came in between.
    assert all(pause["ts_ms"] <= r["ts_ms"] <= resume["ts_ms"] + 1000 for r in paused)
    with SqliteRegistry(settings.registry.path) as registry:
        fork = registry.version(reports[0]["version"])
    # Every event is labelled inline and valid, so the lineage of each partition is one stretch but
    # for the gap the pause made: exactly the events it scored without learning.
    runs: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for r in fork.ranges:
        runs[f"{r.topic}/{r.partition}"].append((r.first, r.last))
    gaps = {part: [(a[1] + 1, b[0] - 1) for a, b in itertools.pairwise(sorted(spans))] for part, spans in runs.items()}
    assert all(len(g) == 1 for g in gaps.values()), gaps
    assert sum(last - first + 1 for g in gaps.values() for first, last in g) == sum(r["n_labelled"] for r in paused)
    assert fork.samples == sum(r["n_learned"] for r in reports)

    slack = 2 * settings.batching.max_wait_ms + 50
    canary = [p["predicted_ts_ms"] for p in out["predictions"] if p["route"] == "canary"]
    canary_before = [t for t in canary if t < ceiling["ts_ms"]]
    canary_after = [t for t in canary if t > ceiling["ts_ms"] + slack]
    assert canary_before and not canary_after
    extra = [e for e in out["events"] if e["type"] == "report" and e["model"] == "extra"]
    assert extra and all(added["ts_ms"] <= e["ts_ms"] <= retired["ts_ms"] for e in extra)


def test_a_replayed_candidate_learns_its_stretches_first_and_a_deleted_one_is_refused(
    fresh_settings: SettingsFactory,
) -> None:
    settings = fresh_settings(runtime={"tail": True, "workers": 1}, promotion=QUIET)
    k = settings.kafka
    live = Live(settings)
    try:
        live.command("freeze")
        live.feed(2000)
        admin = AdminClient({"bootstrap.servers": k.bootstrap_servers})
        probe = Consumer({"bootstrap.servers": k.bootstrap_servers, "group.id": "probe"})
        ends = {p: probe.get_watermark_offsets(TopicPartition(k.events_topic, p), timeout=10)[1] for p in range(4)}
        probe.close()
        ranges: list[dict[str, Any]] = [
            {"topic": k.events_topic, "partition": p, "first": 0, "last": end - 1} for p, end in ends.items()
        ]
        replay = live.command("replay", {"candidate": {"name": "replayed", "learner": "river-logreg"},
                                         "ranges": ranges})  # fmt: skip
        live.feed(1000)
        # Retention deletes the start of a partition: a replay of it is refused, naming what is left.
        gone = TopicPartition(k.events_topic, 0, 10)
        admin.delete_records([gone])[gone].result(timeout=30)
        refused = live.command("replay", {"candidate": {"name": "late"}, "ranges": ranges[:1]})
        live.feed(500)
    finally:
        out = live.finish()
    assert replay["outcome"] == "applied" and replay["detail"].startswith(f"replaying {sum(ends.values())} messages")
    assert refused["outcome"] == "rejected"
    assert refused["detail"] == (f"replay: {k.events_topic}/0 offsets before 10 were deleted (retention); "
                                 "the earliest still there is 10")  # fmt: skip
    reports = [e for e in out["events"] if e["type"] == "report" and e["model"] == "replayed"]
    first = min(reports, key=lambda r: r["batch"])
    assert first["batch"] == 0 and first["n_learned"] == sum(ends.values())  # every replayed event is labelled
    with SqliteRegistry(settings.registry.path) as registry:
        version = registry.version(first["version"])
    assert version.config["replayed"] == [[r["topic"], r["partition"], r["first"], r["last"]] for r in ranges]
    runs = collections.defaultdict(list)
    for run in version.ranges:
        runs[(run.topic, run.partition)].append((run.first, run.last))
    for r in ranges:  # the lineage starts with the stretch replayed, then goes on with the live stream
        first_run = min(runs[(r["topic"], r["partition"])])
        assert first_run[0] == 0 and first_run[1] >= r["last"]


def test_a_control_topic_of_several_partitions_is_refused(kafka_bootstrap: str) -> None:
    """A command's offset is its place in the order: a control topic needs exactly one partition.
    One created a moment before is waited for until its partition has a leader."""
    run = uuid.uuid4().hex[:10]
    one, two = f"it-{run}.control1", f"it-{run}.control2"
    try:
        ensure_topics(kafka_bootstrap, [one], 1)
        require_one_partition(kafka_bootstrap, one, "control topic")
        ensure_topics(kafka_bootstrap, [two], 2)
        with pytest.raises(TopicError, match=rf"{two} has 2 partitions; the control topic needs exactly 1"):
            require_one_partition(kafka_bootstrap, two, "control topic")
    finally:
        delete_topics(kafka_bootstrap, [one, two])
