"""The alerts as Prometheus loads them: the chart's rule file."""

from __future__ import annotations

from typing import Any

import yaml

from tests.observability.promql import ROOT

RULES = ROOT / "helm" / "headwater" / "files" / "alerts.yaml"


def alert_rules() -> dict[str, Any]:
    """The rule file, as a Prometheus ``rule_files`` entry reads it."""
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return rules


def by_name(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each alert of ``rules`` (one group), by its name, in the file's order."""
    (group,) = rules["groups"]
    return {rule["alert"]: rule for rule in group["rules"]}
