"""The alerts as Prometheus loads them: the spec of the chart's PrometheusRule, rendered by the real
``helm`` with the chart's thresholds (or others), as a plain rule file."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.helm.chart import CHART, render

DEFAULT = CHART / "ci" / "default-values.yaml"  # the values a chart needs (brokers, schema)


def alert_rules(thresholds: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The rule file (``groups``) the chart renders with its defaults, or with ``thresholds`` as
    ``metrics.prometheusRule.alerts`` in a values file of their own (as a user sets them)."""
    with tempfile.TemporaryDirectory() as tmp:
        values = Path(tmp) / "thresholds.yaml"
        values.write_text(yaml.safe_dump({"metrics": {"prometheusRule": {"alerts": dict(thresholds or {})}}}))
        rendered = render(DEFAULT, values, sets=["metrics.prometheusRule.enabled=true"], monitoring=True)
    spec: dict[str, Any] = rendered.one("PrometheusRule")["spec"]
    return spec


def write_rules(path: Path, thresholds: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    path.write_text(yaml.safe_dump(alert_rules(thresholds), sort_keys=False, width=200))
    return path


def by_name(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each alert of ``rules`` (one group), by its name, in the file's order."""
    (group,) = rules["groups"]
    return {rule["alert"]: rule for rule in group["rules"]}
