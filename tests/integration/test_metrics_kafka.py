"""After 20,000 events through the real broker, the daemon's metrics parse, pass `promtool check
metrics`, and count exactly the predictions and dead letters the topics hold."""

from __future__ import annotations

import collections

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daemon.kafka_client import make_producer, produce_all, read_all
from daemon.runner import run_daemon
from daemon.workload import Workload, WorkloadSpec
from tests.daemon.test_metrics import promtool_check
from tests.integration.conftest import SettingsFactory

pytestmark = pytest.mark.kafka


def test_metrics_after_20000_events_match_the_topics(fresh_settings: SettingsFactory) -> None:
    settings = fresh_settings()
    k = settings.kafka
    workload = Workload(WorkloadSpec(n_events=20_000))
    items = list(workload.items())
    topic = {"events": k.events_topic, "labels": k.labels_topic or k.events_topic}
    produce_all(make_producer(k.bootstrap_servers), ((topic[i.kind], i.key, i.value) for i in items))
    registry = CollectorRegistry()
    run_daemon(settings, collector=registry)  # the daemon's own metrics, as its /metrics exports them

    exposition = generate_latest(registry)
    samples = [s for family in text_string_to_metric_families(exposition.decode()) for s in family.samples]
    promtool_check(exposition)

    def total(name: str, by: str) -> collections.Counter[str]:
        return collections.Counter({s.labels[by]: int(s.value) for s in samples if s.name == name})

    msgs = read_all(k.bootstrap_servers, [k.predictions_topic, k.dead_letter_topic])
    predictions = [orjson.loads(m.value() or b"") for m in msgs if m.topic() == k.predictions_topic]
    dead = [orjson.loads(m.value() or b"") for m in msgs if m.topic() == k.dead_letter_topic]
    assert total("headwater_predictions_total", "route") == collections.Counter(p["route"] for p in predictions)
    assert total("headwater_dead_letters_total", "reason") == collections.Counter(d["reason"] for d in dead)
    expected_dead = collections.Counter(i.expect.value for i in items if i.expect is not None)
    assert collections.Counter(d["reason"] for d in dead) == expected_dead  # every malformed record, once
    assert len(predictions) == sum(1 for i in items if i.kind == "events" and i.expect is None)
    latency_count = [s.value for s in samples if s.name == "headwater_prediction_latency_seconds_count"]
    assert sum(latency_count) == len(predictions)  # every prediction's latency observed once
    consumed = total("headwater_records_consumed_total", "topic")
    assert consumed == collections.Counter(topic[i.kind] for i in items)  # every record read once
    assert [s.value for s in samples if s.name == "headwater_ready"] == [1.0]
