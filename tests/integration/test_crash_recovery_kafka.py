"""kill -9 mid-stream: the restarted daemon loses no event and serves from its last snapshot.

The daemon runs as an operator runs it (``headwater run`` in a process of its own) with a MOA
champion, MOA's Adaptive Random Forest in a JVM of the daemon's; it is killed with SIGKILL while
events keep coming, then started again on the same recovery store.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from daemon.kafka_client import make_producer, produce_all, read_all
from daemon.registry import SqliteRegistry
from daemon.workload import WorkItem, Workload, WorkloadSpec
from tests.integration.conftest import SettingsFactory

pytestmark = pytest.mark.kafka

RATE = 1500.0  # messages/s: the forest learns beside serving on 2 cores
SNAPSHOT_S = 1.0


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(0.25)


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "run", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip


def test_kill_9_mid_stream_with_a_moa_champion_loses_no_event(fresh_settings: SettingsFactory, tmp_path: Path) -> None:
    settings = fresh_settings(
        model={"learner": "moa-arf", "params": {"ensemble_size": 5}},
        runtime={
            "tail": True,
            "workers": 2,
            "recovery_dir": str(tmp_path / "recovery"),
            "snapshot_interval_s": SNAPSHOT_S,
        },
        promotion={"min_samples": 100},
    )
    k = settings.kafka
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    spec = WorkloadSpec(n_events=12_000, drift_at=12_000, malformed_every=0, unmatched_labels=0, label_delay=200)
    workload = Workload(spec)
    items = list(workload.items())
    half = next(i for i, item in enumerate(items) if item.event_index == 6_000)
    producer = make_producer(k.bootstrap_servers)
    by_kind = {"events": k.events_topic, "labels": str(k.labels_topic)}

    def messages(part: list[WorkItem]) -> list[tuple[str, bytes | None, bytes | None]]:
        return [(by_kind[i.kind], i.key, i.value) for i in part]

    def outputs() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        msgs = read_all(k.bootstrap_servers, [k.predictions_topic, k.model_events_topic])
        bodies = [(m.topic(), orjson.loads(m.value() or b"null")) for m in msgs]
        return [b for t, b in bodies if t == k.predictions_topic], [b for t, b in bodies if t == k.model_events_topic]

    log = tmp_path / "daemon.log"
    daemon = _start(config, log)
    try:
        produce_all(producer, messages(items[:half]), RATE)

        def trained_champion() -> bool:
            return any(e["type"] == "decision" and e["action"] == "promote" and e["previous"] for e in outputs()[1])

        _wait(trained_champion, 120, "a trained fork to replace the untrained first champion")
        time.sleep(3 * SNAPSHOT_S)  # bounded: a few snapshot intervals, so the store holds the trained champion

        rest = threading.Thread(target=produce_all, args=(producer, messages(items[half:]), RATE))
        rest.start()
        time.sleep(1.0)  # bounded: the second half is on its way when the daemon dies
        daemon.send_signal(signal.SIGKILL)
        assert daemon.wait(30) == -signal.SIGKILL
        with SqliteRegistry(settings.registry.path) as registry:  # who was promoted when it died
            made = registry.decisions(settings.model.group)
        promoted_before_kill = {d.version for d in made if d.action == "promote"}
        restarted_ms = time.time() * 1000
        daemon = _start(config, log)
        rest.join(120)
        assert not rest.is_alive()

        _wait(lambda: len({p["id"] for p in outputs()[0]}) >= spec.n_events, 180, "a prediction for every event")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if daemon.poll() is None:
            daemon.kill()

    predictions, _ = outputs()
    counts = collections.Counter(p["id"] for p in predictions)
    assert set(counts) == set(workload.truth)  # 0 events lost
    # At least once: what was served after the last snapshot before the kill is served again.
    again = sum(n - 1 for n in counts.values())
    assert again < spec.n_events // 2, f"{again} events served twice"
    # The second run serves from the snapshot: a trained MOA champion from before the kill, not
    # the untrained first version.
    after = sorted((p for p in predictions if p["predicted_ts_ms"] >= restarted_ms), key=lambda p: p["predicted_ts_ms"])
    assert after, "nothing was served after the restart"
    first = after[0]["version"]
    assert first != "default/1"
    assert first in promoted_before_kill
    # Its promotion is on the model-events topic, even where the kill came after the registry had
    # it and before the topic did: the resume emits the decisions made since its snapshot again.
    promotions = {e["version"] for e in outputs()[1] if e["type"] == "decision" and e["action"] == "promote"}
    assert first in promotions
    with SqliteRegistry(settings.registry.path) as registry:
        assert registry.version(first).framework == "moa"
    # It went on learning and serving well: SEA's concept is learnable to well above chance.
    served = [p for p in after if p["id"] in workload.truth]
    accuracy = sum(p["prediction"] == workload.truth[p["id"]] for p in served) / len(served)
    assert accuracy > 0.8, f"accuracy after the restart {accuracy:.3f}"
