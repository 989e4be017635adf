"""The alerts (the chart's PrometheusRule, rendered by helm): promtool checks the rules and runs their
unit test, in which every alert fires on its series and stays quiet on healthy ones; every alert reads documented
metrics, carries a severity, a summary and a description, and has its row and runbook in
docs/alerts.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.daemon.test_metrics import promtool
from tests.observability.promql import ROOT, documented, problems, series_names
from tests.observability.rules import alert_rules, by_name, write_rules

UNIT_TEST = Path(__file__).with_name("alerts_test.yaml")
DOCS = ROOT / "docs" / "alerts.md"
# the issue's list, in its order
ALERTS = [
    "HeadwaterNotReady", "HeadwaterConsumerLagGrowing", "HeadwaterDeadLetterRatioHigh", "HeadwaterRollback",
    "HeadwaterChampionAccuracyDrop", "HeadwaterCandidatesNotLearning", "HeadwaterModelsPaused",
    "HeadwaterDecisionsFrozen", "HeadwaterLabelsQuarantined", "HeadwaterBatchesSkipped", "HeadwaterDeliveryErrors",
    "HeadwaterGpuMemoryHigh", "HeadwaterAdminUnauthorized",
]  # fmt: skip
TABLE_ROW = re.compile(r"^\| \[(\w+)\]\(#(\w+)\) \| (\w+) \| [^|]+ \| ([^|]+) \| (\w+) \|$", re.MULTILINE)


def _rules() -> dict[str, dict[str, Any]]:
    return by_name(alert_rules())


def _check(rules: Path) -> None:
    done = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith(f"SUCCESS: {len(ALERTS)} rules found") and done.stderr == "", done.stderr


def test_promtool_check_rules_is_clean(tmp_path: Path) -> None:
    _check(write_rules(tmp_path / "alerts.yaml"))


def test_promtool_check_rules_does_check(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(x[5m]) >\n")
    done = subprocess.run([promtool(), "check", "rules", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "parse error" in done.stdout + done.stderr


def test_every_alert_fires_on_its_series_and_stays_quiet_on_a_healthy_one(tmp_path: Path) -> None:
    write_rules(tmp_path / "alerts.yaml")  # the chart's, where the unit test's rule_files looks
    shutil.copy(UNIT_TEST, tmp_path / UNIT_TEST.name)
    done = subprocess.run([promtool(), "test", "rules", UNIT_TEST.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_the_unit_test_reads_the_charts_file_and_covers_every_alert_both_ways() -> None:
    spec = yaml.safe_load(UNIT_TEST.read_text())
    assert spec["rule_files"] == ["alerts.yaml"]  # the chart's rules, rendered beside it by the test above
    cases = [case for test in spec["tests"] for case in test["alert_rule_test"]]
    fires = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert sorted(fires) == sorted(quiet) == sorted(ALERTS)
    for case in cases:
        for alert in case["exp_alerts"]:
            assert alert["exp_annotations"]["summary"] and alert["exp_annotations"]["description"]
    # while it fires, each alert has a healthy process, group or GPU beside the one it fires for
    healthy = {c["alertname"] for t in spec["tests"] for c in t["alert_rule_test"] if c["exp_alerts"] and
               _who(t) - {_identity(a["exp_labels"]) for a in c["exp_alerts"]}}  # fmt: skip
    assert sorted(healthy) == sorted(ALERTS), "an alert is never shown a healthy series while it fires"


def test_the_issues_alerts_each_with_a_severity_a_summary_and_a_description() -> None:
    rules = _rules()
    assert list(rules) == ALERTS
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert set(rule["annotations"]) == {"summary", "description"}, name
        assert f"docs/alerts.md#{name.lower()}" in rule["annotations"]["description"], name


def test_every_alert_reads_documented_metrics_and_labels() -> None:
    names = series_names(documented())
    found = {name: problems(rule["expr"], names) for name, rule in _rules().items()}
    assert {name: p for name, p in found.items() if p} == {}


def test_docs_list_each_alert_with_its_severity_duration_and_thresholds() -> None:
    text, rules = DOCS.read_text(), _rules()
    rows = {name: (anchor, severity, thresholds, for_) for name, anchor, severity, thresholds, for_ in
            TABLE_ROW.findall(text)}  # fmt: skip
    assert list(rows) == ALERTS
    for name, (anchor, severity, thresholds, for_) in rows.items():
        rule = rules[name]
        assert anchor == name.lower()
        assert severity == rule["labels"]["severity"], name
        assert for_ == rule.get("for", "0"), name
        for threshold in re.findall(r"`([^`]+)`", thresholds):
            assert threshold in rule["expr"], (name, threshold)
    runbooks = re.findall(r"^### (\w+)\n\n\S", text, re.MULTILINE)
    assert runbooks == ALERTS


WHO = ("instance", "group", "gpu")


def _identity(labels: dict[str, str]) -> tuple[str | None, ...]:
    return tuple(labels.get(key) for key in WHO)


def _who(test: dict[str, Any]) -> set[tuple[str | None, ...]]:
    """The processes, groups and GPUs a test's input series are about."""
    return {_identity(dict(re.findall(r'(\w+)="([^"]*)"', s["series"]))) for s in test["input_series"]}


# a value other than the default for every threshold: (value path, value, alert, what its rule then holds)
CHANGED = [
    ("notReady.for", "7m", "HeadwaterNotReady", ["for: 7m"]),
    ("consumerLagGrowing.records", 5000, "HeadwaterConsumerLagGrowing", ["> 5000"]),
    ("consumerLagGrowing.for", "20m", "HeadwaterConsumerLagGrowing", ["[20m]", "for: 20m"]),
    ("deadLetterRatio.ratio", 0.2, "HeadwaterDeadLetterRatioHigh", ["> 0.2"]),
    ("deadLetterRatio.for", "9m", "HeadwaterDeadLetterRatioHigh", ["for: 9m"]),
    ("rollback.windowMinutes", 30, "HeadwaterRollback", ["[30m]", "< 1800"]),
    ("championAccuracyDrop.drop", 0.05, "HeadwaterChampionAccuracyDrop", ["> 0.05"]),
    ("championAccuracyDrop.bestOf", "12h", "HeadwaterChampionAccuracyDrop", ["[12h]"]),
    ("championAccuracyDrop.for", "30m", "HeadwaterChampionAccuracyDrop", ["for: 30m"]),
    ("candidatesNotLearning.windowMinutes", 20, "HeadwaterCandidatesNotLearning", ["[20m]"]),
    ("candidatesNotLearning.for", "25m", "HeadwaterCandidatesNotLearning", ["for: 25m"]),
    ("modelsPaused.for", "4h", "HeadwaterModelsPaused", ["for: 4h"]),
    ("decisionsFrozen.for", "3h", "HeadwaterDecisionsFrozen", ["for: 3h"]),
    ("labelsQuarantined.for", "45m", "HeadwaterLabelsQuarantined", ["for: 45m"]),
    ("batchesSkipped.windowMinutes", 30, "HeadwaterBatchesSkipped", ["[30m]", "< 1800"]),
    ("deliveryErrors.windowMinutes", 2, "HeadwaterDeliveryErrors", ["[2m]", "< 120"]),
    ("gpuMemory.ratio", 0.8, "HeadwaterGpuMemoryHigh", ["> 0.8"]),
    ("gpuMemory.for", "5m", "HeadwaterGpuMemoryHigh", ["for: 5m"]),
    ("adminUnauthorized.requests", 25, "HeadwaterAdminUnauthorized", [">= 25"]),
    ("adminUnauthorized.windowMinutes", 20, "HeadwaterAdminUnauthorized", ["[20m]", "< 1200"]),
]  # fmt: skip


def _held(rule: dict[str, Any]) -> str:
    return f"{rule['expr']}\nfor: {rule.get('for', '0')}"


def test_every_threshold_is_a_chart_value(tmp_path: Path) -> None:
    values = yaml.safe_load((ROOT / "helm" / "headwater" / "values.yaml").read_text())
    alerts = values["metrics"]["prometheusRule"]["alerts"]
    leaves = {f"{alert}.{key}" for alert, keys in alerts.items() for key in keys}
    assert leaves == {path for path, *_ in CHANGED}, "a threshold value without its case here"
    docs = DOCS.read_text()
    assert [path for path in sorted(leaves) if f"`{path}`" not in docs] == [], "docs/alerts.md: a value not listed"
    thresholds: dict[str, dict[str, Any]] = {}
    for path, value, *_ in CHANGED:
        alert, key = path.split(".")
        thresholds.setdefault(alert, {})[key] = value
    changed, default = by_name(alert_rules(thresholds)), _rules()
    for path, _, alert, fragments in CHANGED:
        for fragment in fragments:
            assert fragment in _held(changed[alert]), (path, fragment, changed[alert])
            assert fragment not in _held(default[alert]), (path, fragment, "already there by default")
    _check(write_rules(tmp_path / "changed.yaml", thresholds))  # still valid rules
