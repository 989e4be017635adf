"""An operator's command on a cluster of two processes (``headwater run --processes 2``): the one
train step applies it, and its effect — here a promotion — reaches both processes through the
serving-table topic, on every partition."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Settings
from daemon.kafka_client import make_producer, produce_all, read_until
from daemon.workload import Workload, WorkloadSpec
from dataflows.control import encode_command, new_command
from tests.integration.test_cluster_kafka import STALE_MS, Cluster, _messages, _outputs, _wait, eight_partitions

pytestmark = pytest.mark.kafka
__all__ = ["eight_partitions"]  # the fixture, imported for this module's test


def test_a_command_on_a_cluster_reaches_every_process(
    eight_partitions: Callable[..., Settings], tmp_path: Path
) -> None:
    quiet = {"min_samples": 5000, "max_samples": 20000, "probation_samples": 5000}
    settings = eight_partitions(runtime={"tail": True, "workers": 1}, promotion=quiet)
    k = settings.kafka
    control = str(settings.topics().control)
    items = list(Workload(WorkloadSpec(n_events=8_000, drift_at=8_000, malformed_every=0, unmatched_labels=0)).items())
    producer = make_producer(k.bootstrap_servers)
    cluster = Cluster(settings, tmp_path).start()

    def issue(kind: str, args: dict[str, Any]) -> str:
        cmd = new_command(settings.model.group, kind, args, actor="it", reason=f"cluster: {kind}",
                          ts_ms=int(time.time() * 1000))  # fmt: skip
        out = encode_command(cmd, control)
        produce_all(producer, [(out.topic, out.key, out.value)])
        return cmd.id

    def recorded(cid: str) -> bool:
        return any(e.get("type") == "command" and e.get("id") == cid for e in _outputs(settings)[1])

    try:
        cluster.members()
        frozen = issue("freeze", {})
        _wait(lambda: recorded(frozen), 120, "the freeze applied")
        feeder = threading.Thread(target=produce_all, args=(producer, _messages(settings, items), 2000))
        feeder.start()
        time.sleep(2.0)  # bounded: the fork has learned something and both processes serve
        promoted = issue("promote", {"model": "fork", "skip_golden": True})
        _wait(lambda: recorded(promoted), 60, "the promotion applied")
        feeder.join(60)
        n = sum(i.kind == "events" for i in items)
        read_until(k.bootstrap_servers, [k.predictions_topic], lambda m: len(m) >= n, timeout_s=120)
        assert cluster.stop() == 0, cluster.text()[-3000:]
    finally:
        cluster.kill()
    predictions, events = _outputs(settings)
    (record,) = [e for e in events if e["type"] == "command" and e["id"] == promoted]
    assert record["outcome"] == "applied"
    (decision,) = [e for e in events if e["type"] == "decision" and e["evidence"].get("command") == promoted]
    after = [p for p in predictions if p["predicted_ts_ms"] > decision["ts_ms"] + STALE_MS]
    by_partition = collections.defaultdict(set)
    for p in after:
        by_partition[p["source"]["partition"]].add(p["version"])
    assert len(by_partition) == 8, sorted(by_partition)  # served on every partition, by both processes
    assert all(versions == {decision["version"]} for versions in by_partition.values()), dict(by_partition)
