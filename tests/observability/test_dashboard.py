"""The Grafana dashboard (`daemon.dashboard`): the committed JSON is what the generator writes; every
query parses, names only what docs/metrics.md documents, and returns data from the series a daemon
exports (evaluated by promtool); the layout and the variables hold together."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daemon.dashboard import OUTPUT, dashboard, render, targets
from daemon.gpu import register_gpu
from tests.daemon.test_gpu import FakeNvml
from tests.daemon.test_metrics import busy, promtool
from tests.observability.promql import SELECTOR, documented, grafana_free, parsed, problems, series_names

MINUTES = 30  # minutes of input series; queries are evaluated at the 20th


def test_the_committed_dashboard_is_what_the_generator_writes() -> None:
    assert OUTPUT.read_text(encoding="utf-8") == render(), "run `make dashboard` and commit the JSON"
    assert json.loads(OUTPUT.read_text(encoding="utf-8"))["uid"] == "headwater"


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    queries = " ".join(t["expr"] for _, t in targets(dashboard()))
    for metric in (
        "headwater_predictions_total", "headwater_consumer_lag_records", "headwater_dead_letters_total",
        "headwater_prediction_latency_seconds_bucket", "headwater_rolling_accuracy_ratio",
        "headwater_canary_share_ratio", "headwater_serving_model_age_seconds", "headwater_lane_lag_batches",
        "headwater_batches_skipped_total", "headwater_pending_labels", "headwater_paused_models",
        "headwater_decisions_frozen", "headwater_commands_total", "headwater_gpu_memory_used_bytes",
        "process_resident_memory_bytes",
    ):  # fmt: skip
        assert metric in queries, metric
    assert "histogram_quantile(0.5," in queries and "histogram_quantile(0.99," in queries
    annotations = {a["name"]: a["expr"] for a in dashboard()["annotations"]["list"] if "expr" in a}
    assert set(annotations) == {"Promotions", "Rollbacks"}
    assert 'action="promote"' in annotations["Promotions"] and 'action="rollback"' in annotations["Rollbacks"]


def test_every_query_names_only_documented_metrics_and_labels() -> None:
    names = series_names(documented())
    found = {where: problems(grafana_free(t["expr"]), names) for where, t in targets(dashboard())}
    assert {where: p for where, p in found.items() if p} == {}
    variable = _variable("group")["query"]["query"]
    metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable).groups()  # type: ignore[union-attr]
    assert label in names[metric][1].labels


def test_every_query_reads_the_chosen_data_source_and_groups() -> None:
    board = dashboard()
    assert [v["type"] for v in board["templating"]["list"]] == ["datasource", "query"]
    assert _variable("datasource")["query"] == "prometheus"
    assert _variable("group")["multi"] and _variable("group")["includeAll"]
    names = series_names(documented())
    for where, target in targets(board):
        assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        text = parsed(target["expr"].replace("$__rate_interval", "5m"))  # "$group" is a string PromQL parses
        for metric, matchers in SELECTOR.findall(text):  # a metric with a group label: the chosen groups
            if metric in names and "group" in names[metric][1].labels:
                assert 'group=~"$group"' in matchers, (where, metric)


def test_panels_tile_the_grid_without_overlapping() -> None:
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] >= 0 and box["x"] + box["w"] <= 24, panel["title"]
        cells = {(box["x"] + dx, box["y"] + dy) for dx in range(box["w"]) for dy in range(box["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
    assert all(t["refId"] and t["legendFormat"] for _, t in targets(dashboard()) if "refId" in t)


def test_every_query_returns_data_from_what_a_daemon_exports(tmp_path: Path) -> None:
    """Each query, its variables substituted, becomes an alert that fires when the query returns a
    value that is a number (not NaN), over input series made from the exposition of a busy
    `PrometheusMetrics` (every method called; a rollback too), GPU telemetry and the process
    collector: counters and histograms grow by their value a minute, gauges stay."""
    registry = CollectorRegistry()
    busy(registry).decided("default", "rollback")
    register_gpu(registry, FakeNvml())
    ProcessCollector(registry=registry)  # what daemon/runner.py must register (docs/metrics.md, Process)
    queries = {f"Q{i}": (where, grafana_free(t["expr"])) for i, (where, t) in enumerate(targets(dashboard()))}
    rules = {"groups": [{"name": "queries", "rules": [
        {"alert": name, "expr": f"count(({expr}) > -Inf) > 0"} for name, (_, expr) in queries.items()
    ]}]}  # fmt: skip
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": _input_series(registry),
        "alert_rule_test": [{"eval_time": "20m", "alertname": name, "exp_alerts": [{"exp_labels": {}}]}
                            for name in queries],
    }]}  # fmt: skip
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests))
    done = subprocess.run([promtool(), "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    failed = sorted(set(re.findall(r"alertname: (Q\d+)", done.stdout + done.stderr)), key=lambda q: int(q[1:]))
    assert (done.returncode, failed) == (0, []), [queries[q] for q in failed] or done.stdout + done.stderr


def _input_series(registry: CollectorRegistry) -> list[dict[str, str]]:
    out = []
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        grows = family.type in ("counter", "histogram")
        for sample in family.samples:
            labels = {**sample.labels, "job": "headwater", "instance": "hw-0"}
            matchers = ", ".join(f'{k}="{_escaped(v)}"' for k, v in sorted(labels.items()))
            if sample.name.endswith("_created"):  # created when the series began
                values = ["0"] * (MINUTES + 1)
            else:
                values = [repr(sample.value * (i if grows else 1)) for i in range(MINUTES + 1)]
            out.append({"series": f"{sample.name}{{{matchers}}}", "values": " ".join(values)})
    return out


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _variable(name: str) -> Any:
    (variable,) = [v for v in dashboard()["templating"]["list"] if v["name"] == name]
    return variable
