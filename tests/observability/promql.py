"""What the alert and dashboard tests share: the metrics docs/metrics.md documents, PromQL's vector
selectors read by promtool's own parser, and a check that an expression names only documented
metrics, with their documented labels, and takes `rate` and `increase` of counters only."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.daemon.test_metrics import promtool

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "metrics.md"
ROW = re.compile(r"^\| `([a-zA-Z_:][a-zA-Z0-9_:]*)` \| (\w+) \|([a-z_, ]*)\|", re.MULTILINE)
MARK = "hw_selector_mark"
# a name and its matchers, whose quoted values may hold braces (`route="/groups/{group}"`)
SELECTOR = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)?\{((?:[^{}"]|"(?:[^"\\]|\\.)*")*)\}')
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)(?:=~|!~|!=|=)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
RATE_OF = re.compile(r"\b(?:rate|irate|increase|resets)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
# labels Prometheus adds to every scraped series (the target's), and the mark
TARGET_LABELS = frozenset({"instance", "job", "namespace", "pod", "service", "container", "endpoint", MARK})
# Grafana's variables, as a test substitutes them
GRAFANA = {"$__rate_interval": "5m", "$__interval": "1m", "$group": "default"}


@dataclass(frozen=True)
class Documented:
    kind: str
    labels: frozenset[str]


def documented() -> dict[str, Documented]:
    """docs/metrics.md's tables, name -> type and labels."""
    rows = ROW.findall(DOCS.read_text())
    assert len(rows) > 25, "docs/metrics.md's tables were not read"
    return {name: Documented(kind, frozenset(x.strip() for x in labels.split(",") if x.strip()))
            for name, kind, labels in rows}  # fmt: skip


def series_names(docs: dict[str, Documented]) -> dict[str, tuple[str, Documented]]:
    """Every series name the documented metrics put in Prometheus: a counter's ``_total`` and
    ``_created``, a histogram's ``_bucket`` (with ``le``), ``_count``, ``_sum`` and ``_created``,
    a gauge's own name. Each maps to its kind of series and its metric's entry."""
    out: dict[str, tuple[str, Documented]] = {}
    for name, doc in docs.items():
        if doc.kind == "counter":
            assert name.endswith("_total"), f"docs/metrics.md: counter {name} without _total"
            out[name] = ("counter", doc)
            out[name.removesuffix("_total") + "_created"] = ("gauge", doc)
        elif doc.kind == "histogram":
            out[name + "_bucket"] = ("counter", Documented(doc.kind, doc.labels | {"le"}))
            out[name + "_count"] = ("counter", doc)
            out[name + "_sum"] = ("counter", doc)
            out[name + "_created"] = ("gauge", doc)
        else:
            out[name] = ("gauge", doc)
    return out


def grafana_free(expr: str) -> str:
    """``expr`` with Grafana's variables replaced by what they stand for in a query."""
    for variable, value in GRAFANA.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a variable the tests do not know: {expr}"
    return expr


def parsed(expr: str) -> str:
    """``expr`` as promtool parses and prints it, every vector selector marked: a syntax error
    fails here, with promtool's message."""
    done = subprocess.run(
        [promtool(), "--experimental", "promql", "label-matchers", "set", expr, MARK, "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, f"promtool cannot parse {expr!r}: {done.stderr}"
    return done.stdout


def problems(expr: str, names: dict[str, tuple[str, Documented]]) -> list[str]:
    """What in ``expr`` docs/metrics.md does not back: metrics it does not list, labels a metric
    does not have, a `rate` of a gauge; empty when everything is documented."""
    text = parsed(expr)
    selectors = [(name, matchers) for name, matchers in SELECTOR.findall(text) if f'{MARK}="1"' in matchers]
    out = []
    if len(selectors) != text.count(f'{MARK}="1"') or not all(name for name, _ in selectors):
        out.append(f"a selector without a metric name in {text}")
    if not selectors:
        out.append(f"no metric in {expr}")
    known: set[str] = set(TARGET_LABELS)
    for name, matchers in selectors:
        if not name:
            continue
        if name not in names:
            out.append(f"{name} is not a series of a metric in docs/metrics.md")
            continue
        labels = names[name][1].labels
        known |= labels
        out += [f"{name} has no label {label}" for label in MATCHER.findall(matchers)
                if label not in labels and label not in TARGET_LABELS]  # fmt: skip
    for grouping in GROUPING.findall(text):
        grouped = {x.strip() for x in grouping.split(",") if x.strip()}
        out += [f"grouping by {label}, which no metric of {expr} has" for label in sorted(grouped - known)]
    for name in RATE_OF.findall(text):
        if name in names and names[name][0] != "counter":
            out.append(f"rate or increase of {name}, which is not a counter")
    return out
