"""Headwater's Grafana dashboard, as code: `dashboard()` returns its JSON model, and
``python -m daemon.dashboard [PATH]`` writes it to helm/headwater/dashboards/headwater.json, which the
chart ships as a ConfigMap for Grafana's sidecar (a test writes it again and compares).

Plain dicts in Grafana's dashboard JSON model (schema 39): the panels are few and simple, and no
SDK is needed to read or change them. Every query reads the metrics docs/metrics.md lists; two
variables choose the Prometheus data source and the groups. Series without a ``group`` label
(Kafka, dead letters, readiness, the admin API, the GPU, memory) are shown for every group.

>>> board = dashboard()
>>> [v["name"] for v in board["templating"]["list"]]
['datasource', 'group']
>>> all(t["expr"] for _, t in targets(board))
True
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["OUTPUT", "Panel", "Query", "dashboard", "render", "targets"]

OUTPUT = Path(__file__).resolve().parents[1] / "helm" / "headwater" / "dashboards" / "headwater.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
G = 'group=~"$group"'  # the group variable's matcher
RATE = "$__rate_interval"
WIDTH, HEIGHT = 24, 8  # Grafana's grid: 24 columns; panels 8 rows high

Json = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """One PromQL query and the legend of the series it returns."""

    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    """A time series panel (or a state timeline, with ``states``) ``width`` columns wide."""

    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    width: int = 8
    max: float | None = None
    states: dict[str, tuple[str, str]] = field(default_factory=dict)  # value -> (text, colour)


def _rate(metric: str, by: str, matchers: str = "") -> str:
    selector = f"{metric}{{{matchers}}}" if matchers else metric
    return f"sum by ({by}) (rate({selector}[{RATE}]))"


def _quantile(q: float) -> Query:
    inner = _rate("headwater_prediction_latency_seconds_bucket", "group, route, le", G)
    return Query(f"histogram_quantile({q}, {inner})", f"p{round(q * 100)} {{{{group}}}} {{{{route}}}}")


# (row title, its panels), top to bottom
# fmt: off
ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    ("Serving", (
        Panel("Predictions by route", "Predictions written per second, by the route that served them.", "ops",
              (Query(_rate("headwater_predictions_total", "group, route", G), "{{group}} {{route}}"),)),
        Panel("Event → prediction latency", "p50 and p99 of each prediction's time less its event's time.", "s",
              (_quantile(0.5), _quantile(0.99))),
        Panel("Records consumed by topic", "Records read per second from the events, labels and control "
              "topics.", "ops", (Query(_rate("headwater_records_consumed_total", "topic"), "{{topic}}"),)),
        Panel("Consumer lag", "Records not read yet, summed over each topic's partitions (all processes).",
              "short", (Query("sum by (topic) (headwater_consumer_lag_records)", "{{topic}}"),)),
        Panel("Dead letters by reason", "Records sent to the dead-letter topic per second, by reason.", "ops",
              (Query(_rate("headwater_dead_letters_total", "reason"), "{{reason}}"),)),
        Panel("Kafka delivery errors", "Output messages the broker refused, per second (each stops the flow).",
              "ops", (Query(_rate("headwater_delivery_errors_total", "topic"), "{{topic}}"),)),
    )),
    ("Models", (
        Panel("Rolling accuracy", "Each model's rolling prequential accuracy; promotions and rollbacks are "
              "marked on every panel.", "percentunit",
              (Query(f"max by (group, model) (headwater_rolling_accuracy_ratio{{{G}}})", "{{group}} {{model}}"),),
              width=12, max=1),
        Panel("Canary share", "Share of the group's keys the canary serves, and the ceiling an operator set.",
              "percentunit", (
                  Query(f"max by (group) (headwater_canary_share_ratio{{{G}}})", "{{group}} share"),
                  Query(f"max by (group) (headwater_canary_ceiling_ratio{{{G}}})", "{{group}} ceiling"),
              ), width=6, max=1),
        Panel("Serving model age", "Time since each route's version began to serve.", "s",
              (Query(f"max by (group, route) (headwater_serving_model_age_seconds{{{G}}})",
                     "{{group}} {{route}}"),), width=6),
        Panel("Lane lag", "Labelled batches waiting for each model to learn them.", "short",
              (Query(f"max by (group, model) (headwater_lane_lag_batches{{{G}}})", "{{group}} {{model}}"),)),
        Panel("Skipped batches", "Labelled batches a model skipped per second because it fell too far behind.",
              "ops", (Query(_rate("headwater_batches_skipped_total", "group, model", G), "{{group}} {{model}}"),)),
        Panel("Labels waiting", "Labels waiting for their event, and events waiting for their label, in the "
              "label join.", "short", (
                  Query(f"sum by (group) (headwater_pending_labels{{{G}}})", "{{group}} labels"),
                  Query(f"sum by (group) (headwater_pending_events{{{G}}})", "{{group}} events"),
              )),
        Panel("Examples learned", "Labelled examples each model learned per second (a champion only scores).",
              "ops", (Query(_rate("headwater_examples_learned_total", "group, model", G), "{{group}} {{model}}"),),
              width=12),
        Panel("Decisions", "The promoter's decisions per second, by action.", "ops",
              (Query(_rate("headwater_decisions_total", "group, action", G), "{{group}} {{action}}"),), width=12),
        Panel("Vote weights", "With model.vote: each member's weight in the vote, and what serves its route "
              "(the vote, or the one member the guard chose).", "percentunit", (
                  Query(f"max by (group, model) (headwater_vote_weight_ratio{{{G}}})", "{{group}} {{model}}"),
                  Query(f"max by (group, model) (headwater_vote_choice{{{G}}}) > 0", "{{group}} serves: {{model}}"),
              ), width=12, max=1),
        Panel("Label quarantine", "Labelled examples the quarantine holds back (not learned, not counted), and its "
              "engagements, clearings and releases per second.", "short", (
                  Query(f"max by (group) (headwater_quarantine_held_examples{{{G}}})", "{{group}} held"),
                  Query(_rate("headwater_quarantine_total", "group, action", G), "{{group}} {{action}}/s"),
              ), width=12),
    )),
    ("Operators", (
        Panel("Ready", "Whether each process answers /readyz with 200.", "short",
              (Query("max by (instance) (headwater_ready)", "{{instance}}"),),
              states={"0": ("not ready", "red"), "1": ("ready", "green")}),
        Panel("Paused and frozen", "Candidates an operator paused, and whether the group's decisions are "
              "frozen (1).", "short", (
                  Query(f"max by (group) (headwater_paused_models{{{G}}})", "{{group}} paused"),
                  Query(f"max by (group) (headwater_decisions_frozen{{{G}}})", "{{group}} frozen"),
              )),
        Panel("Commands by outcome", "Operators' commands read from the control topic per second.", "ops",
              (Query(_rate("headwater_commands_total", "group, kind, outcome", G),
                     "{{group}} {{kind}} {{outcome}}"),)),
        Panel("Admin API requests by status", "Requests per second; 401s are requests without a valid token.",
              "reqps", (Query(_rate("headwater_http_requests_total", "status"), "{{status}}"),), width=12),
        Panel("Admin API p99", "The slowest 1 % of admin API requests, by route.", "s", (
            Query("histogram_quantile(0.99, "
                  f"{_rate('headwater_http_request_duration_seconds_bucket', 'route, le')})", "{{route}}"),
        ), width=12),
    )),
    ("Resources", (
        Panel("GPU utilization", "Share of the last sample period each GPU was busy.", "percentunit",
              (Query("max by (instance, gpu) (headwater_gpu_utilization_ratio)", "{{instance}} GPU {{gpu}}"),),
              width=6, max=1),
        Panel("GPU memory", "GPU memory in use, as a share of the GPU's memory.", "percentunit", (
            Query("max by (instance, gpu) (headwater_gpu_memory_used_bytes / headwater_gpu_memory_total_bytes)",
                  "{{instance}} GPU {{gpu}}"),
        ), width=6, max=1),
        Panel("GPU temperature and power", "Die temperature (°C) and power draw (W).", "short", (
            Query("max by (instance, gpu) (headwater_gpu_temperature_celsius)", "{{instance}} GPU {{gpu}} °C"),
            Query("max by (instance, gpu) (headwater_gpu_power_watts)", "{{instance}} GPU {{gpu}} W"),
        ), width=6),
        Panel("Memory", "Resident memory of each process.", "bytes",
              (Query("max by (instance) (process_resident_memory_bytes)", "{{instance}}"),), width=6),
    )),
)
# fmt: on

# Decisions to mark on every panel: a counter's series starts at its first decision, which
# increase() cannot see, so a series created within the window counts too (see the alerts).
ANNOTATIONS = (("Promotions", "promote", "green"), ("Rollbacks", "rollback", "red"))


def _decision_expr(action: str) -> str:
    chosen = f'headwater_decisions_total{{{G}, action="{action}"}}'
    created = f"headwater_decisions_created{{{G}}}"
    return f"sum by (group) ({chosen} and time() - {created} < 120 or increase({chosen}[2m])) > 0"


def _annotation(name: str, action: str, colour: str) -> Json:
    return {
        "datasource": DATASOURCE, "enable": True, "hide": False, "iconColor": colour, "name": name,
        "expr": _decision_expr(action), "step": "1m", "titleFormat": f"{name[:-1]} in {{{{group}}}}",
        "tagKeys": "group", "textFormat": "", "useValueForTime": False,
    }  # fmt: skip


def _variables() -> list[Json]:
    datasource = {
        "name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
        "current": {}, "hide": 0, "options": [], "refresh": 1, "regex": "",
    }  # fmt: skip
    query = "label_values(headwater_serving_info, group)"
    group = {
        "name": "group", "label": "Group", "type": "query", "datasource": DATASOURCE, "definition": query,
        "query": {"query": query, "refId": "group"}, "current": {}, "hide": 0, "includeAll": True,
        "allValue": ".*", "multi": True, "options": [], "refresh": 2, "regex": "", "sort": 1,
    }  # fmt: skip
    return [datasource, group]


def _panel(panel: Panel, pid: int, x: int, y: int) -> Json:
    defaults: Json = {"unit": panel.unit, "min": 0}
    if panel.max is not None:
        defaults["max"] = panel.max
    if panel.states:
        steps = {value: {"text": text, "color": colour} for value, (text, colour) in panel.states.items()}
        defaults["mappings"] = [{"type": "value", "options": steps}]
    targets = [
        {"datasource": DATASOURCE, "refId": chr(ord("A") + i), "expr": q.expr, "legendFormat": q.legend,
         "range": True, "editorMode": "code"}
        for i, q in enumerate(panel.queries)
    ]  # fmt: skip
    options: Json = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                     "tooltip": {"mode": "multi", "sort": "desc"}}  # fmt: skip
    return {
        "id": pid, "type": "state-timeline" if panel.states else "timeseries", "title": panel.title,
        "description": panel.description, "datasource": DATASOURCE,
        "gridPos": {"h": HEIGHT, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []}, "options": options, "targets": targets,
    }  # fmt: skip


def _layout() -> list[Json]:
    """Each row's header, then its panels left to right, wrapping at 24 columns."""
    out: list[Json] = []
    y = 0
    for title, panels in ROWS:
        out.append({"id": len(out) + 1, "type": "row", "title": title, "collapsed": False, "panels": [],
                    "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y}})  # fmt: skip
        y, x = y + 1, 0
        for panel in panels:
            if x + panel.width > WIDTH:
                y, x = y + HEIGHT, 0
            out.append(_panel(panel, len(out) + 1, x, y))
            x += panel.width
        y += HEIGHT
    return out


def dashboard() -> Json:
    """The dashboard's JSON model."""
    builtin = {
        "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
    }  # fmt: skip
    return {
        "uid": "headwater", "title": "Headwater", "tags": ["headwater"],
        "description": "Serving, learning and operating Headwater (metrics: docs/metrics.md).",
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"}, "timezone": "browser",
        "annotations": {"list": [builtin, *(_annotation(*a) for a in ANNOTATIONS)]},
        "templating": {"list": _variables()}, "panels": _layout(),
    }  # fmt: skip


def targets(board: Json) -> Iterator[tuple[str, Json]]:
    """Every query the dashboard runs, with where it is: ``(panel title, target)``, the
    annotations' as ``("annotation <name>", annotation)``; each has an ``expr``."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            yield f"annotation {annotation['name']}", annotation


def render() -> str:
    """The file's text: the model as JSON, a panel, a variable or an annotation a line."""
    return _dumps(dashboard(), "") + "\n"


def _dumps(value: Any, indent: str) -> str:
    """Objects and lists indented, down to a list's items, each on one line."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = (f"{inner}{json.dumps(k)}: {_dumps(v, inner)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and value:
        items = (inner + json.dumps(v, ensure_ascii=False) for v in value)
        return "[\n" + ",\n".join(items) + f"\n{indent}]"
    return json.dumps(value, ensure_ascii=False)


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else OUTPUT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
