"""The alerts (helm/headwater/files/alerts.yaml): promtool checks the file and runs its unit test, in
which every alert fires on its series and stays quiet on healthy ones; every alert reads documented
metrics, carries a severity, a summary and a description, and has its row and runbook in
docs/alerts.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.daemon.test_metrics import promtool
from tests.observability.promql import ROOT, documented, problems, series_names

RULES = ROOT / "helm" / "headwater" / "files" / "alerts.yaml"
UNIT_TEST = Path(__file__).with_name("alerts_test.yaml")
DOCS = ROOT / "docs" / "alerts.md"
# the issue's list, in its order
ALERTS = [
    "HeadwaterNotReady", "HeadwaterConsumerLagGrowing", "HeadwaterDeadLetterRatioHigh", "HeadwaterRollback",
    "HeadwaterChampionAccuracyDrop", "HeadwaterCandidatesNotLearning", "HeadwaterModelsPaused",
    "HeadwaterDecisionsFrozen", "HeadwaterBatchesSkipped", "HeadwaterDeliveryErrors", "HeadwaterGpuMemoryHigh",
    "HeadwaterAdminUnauthorized",
]  # fmt: skip
TABLE_ROW = re.compile(r"^\| \[(\w+)\]\(#(\w+)\) \| (\w+) \| [^|]+ \| ([^|]+) \| (\w+) \|$", re.MULTILINE)


def _rules() -> dict[str, dict[str, Any]]:
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for rule in group["rules"]}


def test_promtool_check_rules_is_clean() -> None:
    done = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith(f"SUCCESS: {len(ALERTS)} rules found") and done.stderr == "", done.stderr


def test_promtool_check_rules_does_check(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(x[5m]) >\n")
    done = subprocess.run([promtool(), "check", "rules", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "parse error" in done.stdout + done.stderr


def test_every_alert_fires_on_its_series_and_stays_quiet_on_a_healthy_one() -> None:
    done = subprocess.run([promtool(), "test", "rules", UNIT_TEST.name], cwd=UNIT_TEST.parent,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_the_unit_test_reads_the_charts_file_and_covers_every_alert_both_ways() -> None:
    spec = yaml.safe_load(UNIT_TEST.read_text())
    assert [(UNIT_TEST.parent / f).resolve() for f in spec["rule_files"]] == [RULES.resolve()]
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
