"""The vote's weights survive kill -9: a daemon with a recovery store serves a stream through the
vote until it is idle and a snapshot holds the last weights, is killed, and restarts on the same
store: before any new label the board serves the vote with exactly the weights it had."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from daemon.kafka_client import make_producer, produce_all, read_all
from daemon.workload import Workload, WorkloadSpec
from tests.integration.conftest import SettingsFactory
from tests.integration.test_admin_daemon_kafka import _free_port, _until
from tests.integration.test_crash_recovery_kafka import _start, _wait

pytestmark = pytest.mark.kafka

SNAPSHOT_S = 0.5


def _weights(client: httpx.Client) -> dict[str, float]:
    vote = client.get("/groups/default").json()["serving"]["vote"]
    return {} if vote is None else {name: m["weight"] for name, m in vote["members"].items()}


@pytest.mark.parametrize("lanes", ["thread", "process"])
def test_the_votes_weights_survive_a_kill_9(fresh_settings: SettingsFactory, tmp_path: Path, lanes: str) -> None:
    port = _free_port()
    settings = fresh_settings(
        runtime={"tail": True, "workers": 1, "lanes": lanes, "recovery_dir": str(tmp_path / "recovery"),
                 "snapshot_interval_s": SNAPSHOT_S},
        model={"candidates": [{"name": "fork"}, {"name": "tree", "learner": "river-hoeffding"}],
               "vote": {"enabled": True}},
        admin={"host": "127.0.0.1", "port": port},
    )  # fmt: skip
    k = settings.kafka
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    spec = WorkloadSpec(n_events=4000, drift_at=4000, malformed_every=0, unmatched_labels=0, label_delay=50)
    by_kind = {"events": k.events_topic, "labels": str(k.labels_topic)}
    producer = make_producer(k.bootstrap_servers)
    log = tmp_path / "daemon.log"

    def predictions() -> list[dict[str, Any]]:
        return [orjson.loads(m.value() or b"{}") for m in read_all(k.bootstrap_servers, [k.predictions_topic])]

    daemon = _start(config, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            _until(client, "/readyz", 200, timeout_s=90)
            produce_all(producer, ((by_kind[i.kind], i.key, i.value) for i in Workload(spec).items()), 3000)
            _wait(lambda: len(predictions()) >= spec.n_events, 120, "every event served")
            last: dict[str, float] = {}

            def settled() -> bool:  # the weights stopped moving: every label learned
                nonlocal last
                now = _weights(client)
                done, last = bool(now) and now == last, now
                return done

            _wait(settled, 60, "the weights to settle")
            time.sleep(4 * SNAPSHOT_S)  # bounded: a snapshot after the last change holds them
            before = _weights(client)
            assert set(before) == {"fork", "tree"} and max(before.values()) > 0.6, before  # not the even start
            daemon.send_signal(signal.SIGKILL)
            assert daemon.wait(30) == -signal.SIGKILL
            daemon = _start(config, log)
            _until(client, "/readyz", 200, timeout_s=90)
            # one event without a label: the step runs (and serves the vote), the weights learn nothing
            produce_all(producer, [(k.events_topic, b"after", orjson.dumps({"id": "after", "features": [1, 2, 3]}))])
            _wait(lambda: any(p["id"] == "after" for p in predictions()), 60, "the event after the restart")
            after = _weights(client)
            (served,) = [p for p in predictions() if p["id"] == "after"]
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert after == before
    assert served["route"] == "vote"
