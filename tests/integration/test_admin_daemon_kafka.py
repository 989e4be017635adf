"""The admin API as `headwater run` serves it, on the real broker: ready once the champion
serves, a command issued over HTTP applied by the running flow and answered with its outcome,
the board and /metrics read back; without the token nothing is written."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.kafka_client import make_producer, produce_all
from daemon.workload import Workload, WorkloadSpec
from tests.integration.conftest import BackgroundDaemon, SettingsFactory

pytestmark = pytest.mark.kafka

TOKEN = "integration-token-of-some-length"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _until(client: httpx.Client, path: str, status: int, timeout_s: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer = client.get(path)
            if answer.status_code == status:
                return answer
        except httpx.TransportError:
            answer = None
        assert time.monotonic() < deadline, f"{path} did not answer {status} within {timeout_s:.0f} s: {answer}"
        time.sleep(0.1)


def test_the_daemon_serves_its_admin_api(fresh_settings: SettingsFactory) -> None:
    port = _free_port()
    quiet = {"min_samples": 5000, "max_samples": 20000, "probation_samples": 5000}
    settings = fresh_settings(
        runtime={"tail": True, "workers": 1}, promotion=quiet, admin={"host": "127.0.0.1", "port": port, "token": TOKEN}
    )
    k = settings.kafka
    daemon = BackgroundDaemon(settings).start()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert _until(client, "/healthz", 200).status_code == 200
            _until(client, "/readyz", 200)
            items = list(Workload(WorkloadSpec(n_events=3000, drift_at=3000)).items())
            by_kind = {"events": k.events_topic, "labels": str(k.labels_topic)}
            produce_all(make_producer(k.bootstrap_servers), ((by_kind[i.kind], i.key, i.value) for i in items), 3000)

            refused = client.post("/groups/default/commands/freeze", json={"reason": "no token"})
            assert refused.status_code == 401
            frozen = client.post("/groups/default/commands/freeze?wait_s=30", json={"reason": "it", "actor": "ci"},
                                 headers=auth)  # fmt: skip
            assert frozen.status_code == 200, frozen.text
            assert frozen.json()["outcome"]["outcome"] == "applied"
            promoted = client.post(
                "/groups/default/commands/promote?wait_s=30",
                json={"reason": "by hand", "model": "fork", "skip_golden": True},
                headers=auth,
            )
            assert promoted.status_code == 200 and promoted.json()["outcome"]["outcome"] == "applied", promoted.text

            board = client.get("/groups/default").json()
            commands = client.get("/groups/default/commands").json()["items"]
            metrics = client.get("/metrics").text
    finally:
        assert daemon.stop(timeout_s=60), "the daemon did not stop within 60 s"
    assert daemon.errors == []
    assert [(c["kind"], c["outcome"]) for c in commands] == [("freeze", "applied"), ("promote", "applied")]
    assert board["serving"]["champion"] != "default/1"
    names = {f.name for f in text_string_to_metric_families(metrics)}
    assert "headwater_gpu_available" in names
