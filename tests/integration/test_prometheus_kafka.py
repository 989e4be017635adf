"""A real Prometheus scrapes a daemon serving on the real broker, through a run with operators'
commands, a promotion and a rollback, and evaluates the chart's alerts on what it scraped: every
dashboard query returns data, every series an alert reads exists, every rule evaluates without an
error, and the alerts about what happened (a rollback, requests without a token) fire while the
others stay quiet. GPU series are absent only where Prometheus itself sees no GPU."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from daemon.dashboard import dashboard, targets
from daemon.kafka_client import make_producer, produce_all
from daemon.workload import Workload, WorkloadSpec
from tests.integration.conftest import BackgroundDaemon, SettingsFactory
from tests.integration.test_admin_daemon_kafka import _free_port, _until
from tests.observability.promql import MARK, SELECTOR, grafana_free, parsed
from tests.observability.rules import alert_rules, by_name
from tests.tools import tool

pytestmark = pytest.mark.kafka

TOKEN = "prometheus-test-token-of-some-length"
UNAUTHORIZED = 12  # requests without a valid token: HeadwaterAdminUnauthorized fires at 10
# what fires after this run, and what must not: ready, not lagging, few dead letters, nothing frozen
FIRING = {"HeadwaterRollback", "HeadwaterAdminUnauthorized"}
QUIET = {"HeadwaterNotReady", "HeadwaterDeadLetterRatioHigh", "HeadwaterDeliveryErrors", "HeadwaterDecisionsFrozen"}


class Prometheus:
    """The real server (scripts/tools prometheus) on a free port, scraping ``target`` every second
    and evaluating ``rules`` every second."""

    def __init__(self, target: str, rules: Path, workdir: Path) -> None:
        self.port = _free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "headwater", "static_configs": [{"targets": [target]}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [tool("prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def api(self, path: str, **params: Any) -> Any:
        answer = self.client.get(f"/api/v1/{path}", params=params)
        assert answer.status_code == 200, f"{path} {params}: {answer.text}"
        body = answer.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def wait(self, what: str, ok: Callable[[], bool], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not ok():
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"Prometheus: {what} not within {timeout_s:.0f} s"
            time.sleep(0.25)

    def close(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _selectors(expr: str) -> list[str]:
    """The vector selectors ``expr`` reads, each as a query of its own (promtool's parser finds them)."""
    out = []
    for name, matchers in SELECTOR.findall(parsed(expr)):
        if f'{MARK}="1"' in matchers:
            rest = [m.strip() for m in matchers.split(",") if m.strip() and MARK not in m]
            out.append(f"{name}{{{', '.join(rest)}}}")
    return out


def test_a_real_prometheus_finds_every_dashboard_query_and_alert_series(
    fresh_settings: SettingsFactory, tmp_path: Path
) -> None:
    port = _free_port()
    quiet = {"min_samples": 5000, "max_samples": 50000, "probation_samples": 50000}  # the commands decide
    settings = fresh_settings(
        runtime={"tail": True, "workers": 1},
        promotion=quiet,
        admin={"host": "127.0.0.1", "port": port, "token": TOKEN},
        model={"vote": {"enabled": True}},  # the fork serves through the vote: its weight panel has data too
    )
    k = settings.kafka
    rules = tmp_path / "alerts.yaml"
    rules.write_text(yaml.safe_dump(alert_rules()))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    items = list(Workload(WorkloadSpec(n_events=9000, drift_at=9000, malformed_every=400)).items())
    by_kind = {"events": k.events_topic, "labels": str(k.labels_topic)}
    producer = make_producer(k.bootstrap_servers)
    feeder = threading.Thread(target=produce_all, args=(producer, [(by_kind[i.kind], i.key, i.value) for i in items],
                                                        1500.0))  # fmt: skip
    daemon = BackgroundDaemon(settings).start()
    prometheus = Prometheus(f"127.0.0.1:{port}", rules, tmp_path)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as admin:
            _until(admin, "/readyz", 200)
            feeder.start()

            def command(kind: str, body: dict[str, Any]) -> None:
                done = admin.post(f"/groups/default/commands/{kind}?wait_s=30", json=body, headers=auth)
                assert done.status_code == 200 and done.json()["outcome"]["outcome"] == "applied", done.text

            time.sleep(2.0)  # bounded: the fork learns a little before it is promoted
            command("canary-ceiling", {"reason": "it", "share": 0.25})
            # the untrained first champion is retired when replaced: a second promotion makes a standby
            for _ in range(2):
                command("promote", {"reason": "it", "model": "fork", "skip_golden": True})
                time.sleep(1.0)  # bounded: the new fork learns a little
            command("rollback", {"reason": "it"})
            for _ in range(UNAUTHORIZED):
                assert admin.post("/groups/default/commands/freeze", json={"reason": "no token"}).status_code == 401
            feeder.join(60)
            assert not feeder.is_alive()

            def scraped(expr: str) -> Callable[[], bool]:
                return lambda: bool(prometheus.query(expr))

            prometheus.wait("the rollback scraped", scraped('headwater_decisions_total{action="rollback"} > 0'))
            prometheus.wait(
                "the 401s scraped", scraped(f'sum(headwater_http_requests_total{{status="401"}}) >= {UNAUTHORIZED}')
            )
            prometheus.wait(
                "every event served and scraped", scraped(f"sum(headwater_predictions_total) >= {len(items) // 2}")
            )

            def firing() -> set[str]:
                return {a["labels"]["alertname"] for a in prometheus.api("alerts")["alerts"] if a["state"] == "firing"}

            prometheus.wait("the alerts about the run firing", lambda: firing() >= FIRING)

            gpus = prometheus.query("max(headwater_gpu_available)")
            has_gpu = bool(gpus) and float(gpus[0]["value"][1]) > 0
            no_data = []
            for where, target in targets(dashboard()):
                if not prometheus.query(grafana_free(target["expr"])):
                    no_data.append(f"{where}: {target['expr']}")
            missing = []
            for name, rule in by_name(alert_rules()).items():
                for selector in _selectors(rule["expr"]):
                    if not prometheus.query(f"count({selector})"):
                        missing.append(f"{name}: {selector}")
            groups = prometheus.api("rules")["groups"]
            alerts = prometheus.api("alerts")["alerts"]
    finally:
        prometheus.close()
        if feeder.is_alive():
            feeder.join(60)
        assert daemon.stop(timeout_s=60), "the daemon did not stop within 60 s"
    assert daemon.errors == []

    def gpu(line: str) -> bool:
        return "headwater_gpu_" in line and "headwater_gpu_available" not in line

    # Without a GPU its readings are absent (the daemon exports headwater_gpu_available 0); nothing else may be.
    empty = [line for line in no_data if has_gpu or not gpu(line)]
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
    absent = [line for line in missing if has_gpu or not gpu(line)]
    assert not absent, "alert series Prometheus does not have:\n" + "\n".join(absent)
    assert has_gpu or any(gpu(line) for line in no_data), "the GPU panels had data on a machine with no GPU"
    evaluated = {r["name"]: r for g in groups for r in g["rules"]}
    assert sorted(evaluated) == sorted(by_name(alert_rules()))
    assert {name: r["lastError"] for name, r in evaluated.items() if r["health"] != "ok"} == {}
    assert not QUIET & {a["labels"]["alertname"] for a in alerts}, alerts  # neither firing nor pending
