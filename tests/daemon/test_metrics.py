"""`PrometheusMetrics`: the names docs/metrics.md documents, the values the calls leave, bounded
labels, and an exposition that prometheus-client's parser and `promtool check metrics` accept."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daemon.gpu import register_gpu
from daemon.metrics import PrometheusMetrics
from dataflows.records import ModelReport
from tests.daemon.test_gpu import FakeNvml
from tests.dataflows.helpers import FakeClock
from tests.tools import tool

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(headwater_[a-z0-9_]+)` \| (\w+) \|([a-z_, ]*)\|", re.MULTILINE)


def _report(model: str = "champion", **fields: Any) -> ModelReport:
    return ModelReport(group="default", model=model, version="default/1", role="champion", ts_ms=0, batch=1, **fields)


def busy(registry: CollectorRegistry) -> PrometheusMetrics:
    """A `PrometheusMetrics` after one call of every method: every metric has a series."""
    m = PrometheusMetrics(registry, clock=FakeClock(1_000.0))
    m.consumed("events", 10)
    m.consumer_lag("events", 0, 3)
    m.served("default", "champion", 2, 0.015)
    m.prediction_latencies("default", "champion", np.array([0.01, 0.02]))
    m.batch_served("default", 12, 0.002)
    m.dead_lettered("bad_json", 1)
    m.flushed(0.004)
    m.delivery_failed("predictions", 1)
    m.serving("default", "champion", "default/1", 900.0)
    m.canary_share("default", 0.1)
    m.learned("default", "fork", 100, 0.05, 1)
    m.reported(_report(rolling_accuracy=0.9, skipped_batches_total=1, pending_labels=4, pending_features=7))
    m.decided("default", "promote")
    m.voted("default", {"fork": 0.7, "tree": 0.3}, "vote")
    m.quarantined("default", action="engaged", held=300)
    m.commanded("default", "pause", "applied")
    m.controlled("default", paused=1, frozen=True, canary_ceiling=0.25)
    m.set_ready(True)
    m.http_request("GET", "/groups/{group}", 200, 0.003)
    return m


def _documented() -> dict[str, tuple[str, frozenset[str]]]:
    rows = ROW.findall(DOCS.read_text())
    names = [name for name, _, _ in rows]
    assert len(names) == len(set(names)), "a metric is documented twice"
    return {
        name: (kind, frozenset(filter(None, (x.strip() for x in labels.split(","))))) for name, kind, labels in rows
    }


def _exported(registry: CollectorRegistry) -> dict[str, tuple[str, frozenset[str]]]:
    """Name as exposed (counters with ``_total``, info with ``_info``), type, labels."""
    out = {}
    for family in registry.collect():
        suffix, kind = {"counter": ("_total", "counter"), "info": ("_info", "gauge")}.get(
            family.type, ("", family.type)
        )
        labels = {key for sample in family.samples for key in sample.labels if key != "le"}
        out[family.name + suffix] = (kind, frozenset(labels))
    return out


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    documented, exported = _documented(), _exported(_registry_of_busy())
    assert sorted(set(exported) - set(documented)) == [], "exported but not in docs/metrics.md"
    assert sorted(set(documented) - set(exported)) == [], "in docs/metrics.md but not exported"
    wrong = {name: (documented[name], exported[name]) for name in documented if documented[name] != exported[name]}
    assert wrong == {}, "type or labels differ (docs, code)"
    assert len(documented) > 20  # the table was read


def _registry_of_busy() -> CollectorRegistry:
    """What the daemon's /metrics exports: `PrometheusMetrics` and GPU telemetry (an NVML that
    answers, so that every GPU series is there)."""
    registry = CollectorRegistry()
    busy(registry)
    register_gpu(registry, FakeNvml())
    return registry


def test_nothing_is_registered_at_import_and_each_registry_gets_its_own_metrics() -> None:
    assert b"headwater_" not in generate_latest(REGISTRY)
    one, two = CollectorRegistry(), CollectorRegistry()
    PrometheusMetrics(one).consumed("events", 3)
    PrometheusMetrics(two)
    assert one.get_sample_value("headwater_records_consumed_total", {"topic": "events"}) == 3
    assert two.get_sample_value("headwater_records_consumed_total", {"topic": "events"}) is None
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PrometheusMetrics(one)


def test_counters_add_up_what_each_call_says() -> None:
    registry = CollectorRegistry()
    m = PrometheusMetrics(registry)
    for route, n in [("champion", 90), ("canary", 10), ("champion", 5)]:
        m.served("default", route, n, 0.01)
    m.dead_lettered("bad_json", 2)
    m.dead_lettered("label_unmatched", 1)
    m.dead_lettered("bad_json", 3)
    m.learned("default", "fork", 64, 0.1, 2)
    m.learned("default", "fork", 36, 0.3, 0)
    for action in ("promote", "refuse", "refuse"):
        m.decided("default", action)
    m.commanded("default", "freeze", "applied")
    m.commanded("default", "freeze", "duplicate")
    value = registry.get_sample_value
    assert value("headwater_predictions_total", {"group": "default", "route": "champion"}) == 95
    assert value("headwater_predictions_total", {"group": "default", "route": "canary"}) == 10
    assert value("headwater_dead_letters_total", {"reason": "bad_json"}) == 5
    assert value("headwater_dead_letters_total", {"reason": "label_unmatched"}) == 1
    fork = {"group": "default", "model": "fork"}
    assert value("headwater_examples_learned_total", fork) == 100
    assert value("headwater_learn_duration_seconds_count", fork) == 2
    assert value("headwater_learn_duration_seconds_sum", fork) == pytest.approx(0.4)
    assert value("headwater_lane_lag_batches", fork) == 0  # the last call's
    assert value("headwater_decisions_total", {"group": "default", "action": "refuse"}) == 2
    assert value("headwater_commands_total", {"group": "default", "kind": "freeze", "outcome": "duplicate"}) == 1


def test_the_latency_histogram_counts_every_value_of_a_batch_in_its_bucket() -> None:
    """Bucket ``le=b`` counts values up to and including b; NaN (an event with no time) is not
    observed; values past the last bound land in +Inf only; the sum is exact."""
    registry = CollectorRegistry()
    m = PrometheusMetrics(registry)
    m.prediction_latencies("default", "champion", np.array([0.001, 0.0011, 0.005, np.nan, 0.3, 400.0]))
    m.prediction_latencies("default", "champion", np.array([0.0009]))
    m.prediction_latencies("default", "canary", np.array([np.nan]))

    def bucket(le: str) -> float | None:
        labels = {"group": "default", "route": "champion", "le": le}
        return registry.get_sample_value("headwater_prediction_latency_seconds_bucket", labels)

    assert [bucket(le) for le in ("0.001", "0.0025", "0.005", "0.25", "0.5", "300.0", "+Inf")] == [2, 3, 4, 4, 5, 5, 6]
    champion = {"group": "default", "route": "champion"}
    assert registry.get_sample_value("headwater_prediction_latency_seconds_count", champion) == 6
    total = registry.get_sample_value("headwater_prediction_latency_seconds_sum", champion)
    assert total == pytest.approx(0.0009 + 0.001 + 0.0011 + 0.005 + 0.3 + 400.0)
    assert (
        registry.get_sample_value("headwater_prediction_latency_seconds_count", {**champion, "route": "canary"}) is None
    )


def test_skipped_batches_count_the_growth_of_each_models_running_total() -> None:
    registry = CollectorRegistry()
    m = PrometheusMetrics(registry)
    for total in (0, 2, 2, 5):
        m.reported(_report("fork", skipped_batches_total=total))
    m.reported(_report("fork", skipped_batches_total=1))  # a new lane of that name: its total starts again
    m.reported(_report("other", skipped_batches_total=4))
    value = registry.get_sample_value
    assert value("headwater_batches_skipped_total", {"group": "default", "model": "fork"}) == 6
    assert value("headwater_batches_skipped_total", {"group": "default", "model": "other"}) == 4


def test_a_report_sets_the_gauges_and_keeps_an_accuracy_it_does_not_carry() -> None:
    registry = CollectorRegistry()
    m = PrometheusMetrics(registry)
    m.reported(_report(rolling_accuracy=0.8, lag_batches=3, pending_labels=5, pending_features=11))
    m.reported(_report(rolling_accuracy=None, lag_batches=1, error="boom"))
    value = registry.get_sample_value
    champion = {"group": "default", "model": "champion"}
    assert value("headwater_rolling_accuracy_ratio", champion) == 0.8
    assert value("headwater_lane_lag_batches", champion) == 1
    assert value("headwater_pending_labels", {"group": "default"}) == 0
    assert value("headwater_pending_events", {"group": "default"}) == 0


def test_a_model_that_is_gone_leaves_no_gauge_and_starts_again_if_it_comes_back() -> None:
    registry = CollectorRegistry()
    m = PrometheusMetrics(registry)
    m.learned("default", "fork", 10, 0.01, 2)
    m.reported(_report("fork", rolling_accuracy=0.7, lag_batches=2))
    m.reported(_report("champion", rolling_accuracy=0.9))
    m.forgot("default", "fork")
    m.forgot("default", "never-seen")  # nothing to drop: no error
    value = registry.get_sample_value
    fork, champion = {"group": "default", "model": "fork"}, {"group": "default", "model": "champion"}
    assert value("headwater_rolling_accuracy_ratio", fork) is None
    assert value("headwater_lane_lag_batches", fork) is None
    assert value("headwater_rolling_accuracy_ratio", champion) == 0.9
    assert value("headwater_examples_learned_total", fork) == 10  # counters stay
    m.reported(_report("fork", rolling_accuracy=0.6))
    assert value("headwater_rolling_accuracy_ratio", fork) == 0.6


def test_the_vote_weights_follow_its_members_and_one_thing_serves() -> None:
    registry = CollectorRegistry()
    m = PrometheusMetrics(registry)
    value = registry.get_sample_value

    def choices() -> dict[str, float]:
        return {s.labels["model"]: s.value for f in registry.collect() for s in f.samples
                if s.name == "headwater_vote_choice"}  # fmt: skip

    m.voted("default", {"fork": 0.7, "tree": 0.3}, "vote")
    assert value("headwater_vote_weight_ratio", {"group": "default", "model": "tree"}) == 0.3
    assert choices() == {"vote": 1.0}
    m.voted("default", {"fork": 0.9, "mlp": 0.1}, "fork")  # tree left, mlp came, the guard chose fork
    assert value("headwater_vote_weight_ratio", {"group": "default", "model": "tree"}) is None
    assert value("headwater_vote_weight_ratio", {"group": "default", "model": "mlp"}) == 0.1
    assert choices() == {"fork": 1.0}
    m.voted("default", {}, "")  # the vote is gone
    assert choices() == {}


def test_the_serving_info_keeps_one_series_per_route_and_the_age_follows_the_clock() -> None:
    registry, clock = CollectorRegistry(), FakeClock(1_000.0)
    m = PrometheusMetrics(registry, clock=clock)
    for number in range(1, 50):  # many promotions: still one series
        m.serving("default", "champion", f"default/{number}", 990.0)
    m.serving("default", "canary", "default/60", 995.0)
    clock.t = 1_030.0
    series = _samples(registry, "headwater_serving_info")
    assert series == {
        (("group", "default"), ("route", "canary"), ("version", "default/60")): 1.0,
        (("group", "default"), ("route", "champion"), ("version", "default/49")): 1.0,
    }
    age = _samples(registry, "headwater_serving_model_age_seconds")
    assert age == {
        (("group", "default"), ("route", "canary")): 35.0,
        (("group", "default"), ("route", "champion")): 40.0,
    }
    m.serving("default", "canary", None, 0.0)
    m.serving("default", "canary", None, 0.0)  # already off: nothing to remove, no error
    assert [dict(k)["route"] for k in _samples(registry, "headwater_serving_info")] == ["champion"]
    assert [dict(k)["route"] for k in _samples(registry, "headwater_serving_model_age_seconds")] == ["champion"]


def test_operators_gauges_and_a_ceiling_that_is_lifted_disappears() -> None:
    registry = CollectorRegistry()
    m = PrometheusMetrics(registry)
    m.controlled("default", paused=2, frozen=True, canary_ceiling=0.0)
    group = {"group": "default"}
    assert registry.get_sample_value("headwater_paused_models", group) == 2
    assert registry.get_sample_value("headwater_decisions_frozen", group) == 1
    assert registry.get_sample_value("headwater_canary_ceiling_ratio", group) == 0.0
    m.controlled("default", paused=0, frozen=False, canary_ceiling=None)
    assert registry.get_sample_value("headwater_decisions_frozen", group) == 0
    assert registry.get_sample_value("headwater_canary_ceiling_ratio", group) is None
    m.set_ready(False)
    assert registry.get_sample_value("headwater_ready") == 0
    m.set_ready(True)
    assert registry.get_sample_value("headwater_ready") == 1


def test_http_labels_stay_bounded_whatever_a_client_sends() -> None:
    registry = CollectorRegistry()
    m = PrometheusMetrics(registry)
    for i in range(100):
        m.http_request(f"X{i}", "unmatched", 404, 0.001)
    m.http_request("GET", "/metrics", 200, 0.002)
    m.http_request("POST", "/groups/{group}/pause", 1234, 0.002)
    series = _samples(registry, "headwater_http_requests_total")
    assert series == {
        (("method", "GET"), ("route", "/metrics"), ("status", "200")): 1.0,
        (("method", "OTHER"), ("route", "unmatched"), ("status", "404")): 100.0,
        (("method", "POST"), ("route", "/groups/{group}/pause"), ("status", "0")): 1.0,
    }


def test_no_counter_or_histogram_is_labelled_with_a_version_or_an_id() -> None:
    for name, (kind, labels) in _exported(_registry_of_busy()).items():
        if kind != "gauge":
            assert not labels & {"version", "id", "key", "event", "offset"}, name


def test_the_exposition_parses_and_gives_back_the_values() -> None:
    registry = _registry_of_busy()
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    (predictions,) = [s for s in families["headwater_predictions"].samples if s.name.endswith("_total")]
    assert (predictions.labels, predictions.value) == ({"group": "default", "route": "champion"}, 2.0)
    latency = {
        s.name: s.value for s in families["headwater_prediction_latency_seconds"].samples if "le" not in s.labels
    }
    assert latency["headwater_prediction_latency_seconds_count"] == 2
    assert latency["headwater_prediction_latency_seconds_sum"] == pytest.approx(0.03)
    (age,) = families["headwater_serving_model_age_seconds"].samples
    assert age.value == 100.0
    assert families["headwater_serving_info"].samples[0].labels["version"] == "default/1"


def promtool() -> str:
    """promtool, built once into the cache by scripts/tools."""
    return tool("promtool")


def promtool_check(exposition: bytes) -> None:
    """`promtool check metrics` on ``exposition``: no problem found, nothing said."""
    done = subprocess.run([promtool(), "check", "metrics"], input=exposition, capture_output=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, b""), done.stderr.decode()


def test_promtool_accepts_the_exposition() -> None:
    promtool_check(generate_latest(_registry_of_busy()))
    # and it does lint: a counter without _total, a gauge in milliseconds
    bad = b"# HELP x_requests r\n# TYPE x_requests counter\nx_requests 1\n# HELP x_ms m\n# TYPE x_ms gauge\nx_ms 1\n"
    done = subprocess.run([promtool(), "check", "metrics"], input=bad, capture_output=True, timeout=60)
    assert done.returncode != 0 and b'"_total" suffix' in done.stderr and b"abbreviated units" in done.stderr


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name
    }


def test_quarantine_actions_start_at_zero_and_the_held_gauge_follows() -> None:
    registry = CollectorRegistry()
    m = PrometheusMetrics(registry, clock=FakeClock(1_000.0))
    m.quarantined("default", held=0)
    value = registry.get_sample_value
    for action in ("engaged", "cleared", "released"):
        assert value("headwater_quarantine_total", {"group": "default", "action": action}) == 0
    m.quarantined("default", action="engaged")
    m.quarantined("default", held=450)
    assert value("headwater_quarantine_total", {"group": "default", "action": "engaged"}) == 1
    assert value("headwater_quarantine_held_examples", {"group": "default"}) == 450
    m.quarantined("default", action="cleared", held=0)
    assert value("headwater_quarantine_total", {"group": "default", "action": "cleared"}) == 1
    assert value("headwater_quarantine_held_examples", {"group": "default"}) == 0
