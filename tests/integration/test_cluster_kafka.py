"""``headwater run --processes 2``: two processes serve the input's partitions between them, one
trains, and every change of who serves reaches both through the serving-table topic.

The cluster runs as an operator runs it (the CLI in a process of its own, which starts and
supervises the two members) on a live stream over 8 partitions.
"""

from __future__ import annotations

import bisect
import collections
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from daemon.config import Settings, with_overrides
from daemon.kafka_client import make_producer, produce_all, read_all
from daemon.registry import SqliteRegistry
from daemon.topics import delete_topics, ensure_topics
from daemon.workload import WorkItem, Workload, WorkloadSpec
from tests.integration.conftest import SettingsFactory

pytestmark = pytest.mark.kafka

PARTITIONS = 8
# How long after a change of champion a process may still serve the one before. 500 ms held in
# CI until a run where the other process served the old champion 500 ms after the change (two
# processes, the broker and the test's producer on 2 CPUs, right at the drift).
STALE_MS = 1000


@pytest.fixture
def eight_partitions(fresh_settings: SettingsFactory, kafka_bootstrap: str) -> Iterator[Callable[..., Settings]]:
    """Settings whose events and labels topics have 8 partitions."""
    made: list[str] = []

    def make(**overrides: Any) -> Settings:
        base = fresh_settings(**overrides)
        run = uuid.uuid4().hex[:10]
        events, labels = f"it-{run}.events8", f"it-{run}.labels8"
        ensure_topics(base.kafka.bootstrap_servers, [events, labels], partitions=PARTITIONS)
        made.extend([events, labels])
        return with_overrides(base, kafka={"events_topic": events, "labels_topic": labels})

    yield make
    delete_topics(kafka_bootstrap, made)


class Cluster:
    """``headwater run --processes 2`` in a process of its own, with its log in a file."""

    def __init__(self, settings: Settings, directory: Path) -> None:
        self.config = directory / "config.yaml"
        self.config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
        self.log = directory / "cluster.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Cluster:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "BYTEWAX_"))}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "daemon.cli", "run", "--config", str(self.config), "--processes", "2"],
                stdout=out, stderr=subprocess.STDOUT, env=env, process_group=0,  # as a shell runs a job
            )  # fmt: skip
        return self

    def members(self, timeout_s: float = 30.0) -> list[int]:
        """The pids of the two members, in the order they were started (process 0 first)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while True:
            found = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
            if len(found) == 2:
                return sorted(int(pid) for pid in found)
            assert time.monotonic() < deadline, f"the cluster has members {found} after {timeout_s:.0f} s"
            time.sleep(0.1)

    def stop(self, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def interrupt(self, timeout_s: float = 60.0) -> int:
        """Ctrl-C in the terminal: SIGINT to the job's whole process group."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for pid in self.members(1.0) if self.proc.poll() is None else []:
                os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(10)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(0.25)


def _outputs(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    k = settings.kafka
    msgs = read_all(k.bootstrap_servers, [k.predictions_topic, k.model_events_topic])
    bodies = [(m.topic(), orjson.loads(m.value() or b"null")) for m in msgs]
    return [b for t, b in bodies if t == k.predictions_topic], [b for t, b in bodies if t == k.model_events_topic]


def _messages(settings: Settings, items: list[WorkItem]) -> list[tuple[str, bytes | None, bytes | None]]:
    by_kind = {"events": settings.kafka.events_topic, "labels": str(settings.kafka.labels_topic)}
    return [(by_kind[i.kind], i.key, i.value) for i in items]


def _changes(model_events: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(time, version) of every change of champion, in order."""
    decided = {(e["ts_ms"], e["version"]) for e in model_events
               if e["type"] == "decision" and e["action"] in ("promote", "rollback")}  # fmt: skip
    return sorted(decided)


def test_two_processes_serve_every_event_once_and_every_promotion_reaches_both(
    eight_partitions: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = eight_partitions(runtime={"tail": True, "workers": 1})
    spec = WorkloadSpec(n_events=16_000, drift_at=8_000, malformed_every=0, unmatched_labels=0, label_delay=200,
                        flip_after_drift=True)  # fmt: skip
    workload = Workload(spec)
    cluster = Cluster(settings, tmp_path).start()
    try:
        assert len(cluster.members()) == 2
        produce_all(make_producer(settings.kafka.bootstrap_servers), _messages(settings, list(workload.items())), 4000)
        _wait(lambda: len({p["id"] for p in _outputs(settings)[0]}) >= spec.n_events, 120, "every event served")
        # Ctrl-C reaches the supervisor alone, which stops each member once (a member given SIGINT
        # and SIGTERM took the second as "stop now", and the cluster hung).
        assert cluster.interrupt() == 0, cluster.text()[-3000:]
        assert cluster.text().count("signal 15: finishing the current micro-batches") == 2
        assert "signal 2" not in cluster.text()
    finally:
        cluster.kill()

    predictions, model_events = _outputs(settings)
    ids = [p["id"] for p in predictions]
    assert len(ids) == len(set(ids)) == spec.n_events  # every event served exactly once
    assert set(ids) == set(workload.truth)
    changes = _changes(model_events)
    # the first champion and at least one trained fork (another after the drift depends on how fast
    # the fork learns on 2 shared cores: what this test holds to is that every change reaches both)
    assert len(changes) >= 2, changes
    times = [t for t, _ in changes]
    by_partition: dict[int, set[str]] = collections.defaultdict(set)
    for p in predictions:
        now = p["predicted_ts_ms"]
        # The champions of the last STALE_MS: a process serves each change within that time.
        first = max(bisect.bisect_right(times, now - STALE_MS) - 1, 0)
        last = bisect.bisect_right(times, now + 50)
        allowed = {v for _, v in changes[first:last]}
        assert p["version"] in allowed, (p["version"], now, changes)
        by_partition[p["source"]["partition"]].add(p["version"])
    assert sorted(by_partition) == list(range(PARTITIONS))
    assert all(len(versions) >= 2 for versions in by_partition.values()), by_partition  # both processes followed
    # The process that does not train learned every change from the topic.
    assert "serving table 2 from" in cluster.text()


def test_kill_9_of_one_process_of_two_then_a_restart_loses_nothing(
    eight_partitions: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = eight_partitions(
        runtime={"tail": True, "workers": 1, "recovery_dir": str(tmp_path / "recovery"), "snapshot_interval_s": 1.0},
    )
    spec = WorkloadSpec(n_events=12_000, drift_at=12_000, malformed_every=0, unmatched_labels=0, label_delay=200)
    workload = Workload(spec)
    items = list(workload.items())
    half = next(i for i, item in enumerate(items) if item.event_index == 6_000)
    producer = make_producer(settings.kafka.bootstrap_servers)
    cluster = Cluster(settings, tmp_path).start()
    rest = threading.Thread(target=produce_all, args=(producer, _messages(settings, items[half:]), 3000))
    try:
        produce_all(producer, _messages(settings, items[:half]), 3000)
        _wait(lambda: len(_changes(_outputs(settings)[1])) >= 2, 120, "a trained fork promoted")
        time.sleep(3.0)  # bounded: a few snapshot intervals, so the store holds the trained champion
        rest.start()
        time.sleep(1.0)  # bounded: the second half is on its way when a member dies
        os.kill(cluster.members()[1], signal.SIGKILL)
        assert cluster.proc is not None
        assert cluster.proc.wait(60) == 128 + signal.SIGKILL, cluster.text()[-3000:]  # the other was stopped
        assert "a member of the cluster exited with 137" in cluster.text()
        cluster.start()
        rest.join(120)
        _wait(lambda: len({p["id"] for p in _outputs(settings)[0]}) >= spec.n_events, 180, "every event served")
        assert cluster.stop() == 0, cluster.text()[-3000:]
    finally:
        cluster.kill()

    predictions, model_events = _outputs(settings)
    counts = collections.Counter(p["id"] for p in predictions)
    assert set(counts) == set(workload.truth)  # nothing lost
    again = sum(n - 1 for n in counts.values())  # at least once: what came after the last snapshot, again
    assert again < spec.n_events // 2, f"{again} events served twice"
    # The decisions on the topic are the registry's: none made before the kill is missing there.
    on_topic = {(e["action"], e["version"], e["previous"]) for e in model_events if e["type"] == "decision"}
    with SqliteRegistry(settings.registry.path) as registry:
        recorded = {(d.action, d.version, d.previous) for d in registry.decisions(settings.model.group)}
    assert on_topic == recorded


def test_a_serving_table_topic_of_several_partitions_is_refused(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Tables keyed to a partition the followers do not read would never reach them: a topic made
    beforehand with more than one partition stops the follower, naming what is wrong."""
    from daemon.serving_log import ServingFollower
    from dataflows.serve import ServingBoard

    topic = f"it-{uuid.uuid4().hex[:10]}.serving"
    ensure_topics(kafka_bootstrap, [topic], partitions=2)
    try:
        with SqliteRegistry(tmp_path) as registry:
            follower = ServingFollower(kafka_bootstrap, topic, "default", registry, ServingBoard())
            follower.start()
            with pytest.raises(RuntimeError, match="has 2 partitions; the serving-table topic needs exactly 1"):
                follower.wait(30)
            follower.join(10)
            assert not follower.is_alive()
    finally:
        delete_topics(kafka_bootstrap, [topic])
