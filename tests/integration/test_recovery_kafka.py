"""With a recovery store, a restarted daemon resumes where it stopped: same model, next offsets."""

from __future__ import annotations

import collections
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from daemon.config import Settings, with_overrides
from daemon.kafka_client import make_producer, produce_all, read_all
from daemon.recovery import MANIFEST, RecoveryMismatchError
from daemon.registry import SqliteRegistry
from daemon.runner import run_daemon
from daemon.workload import FEATURES, Workload, WorkloadSpec
from tests.integration.conftest import SettingsFactory

pytestmark = pytest.mark.kafka


def test_restart_resumes_offsets_and_model_state(fresh_settings: SettingsFactory, tmp_path: Path) -> None:
    settings = fresh_settings(
        runtime={"tail": False, "workers": 2, "recovery_dir": str(tmp_path / "recovery"), "snapshot_interval_s": 1}
    )
    k = settings.kafka
    spec = WorkloadSpec(n_events=4000, drift_at=4000, malformed_every=0, unmatched_labels=0, delayed_share=0.0)
    items = [i for i in Workload(spec).items() if i.kind == "events"]
    producer = make_producer(k.bootstrap_servers)

    produce_all(producer, ((k.events_topic, i.key, i.value) for i in items[:2000]))
    run_daemon(settings)
    with SqliteRegistry(settings.registry.path) as registry:
        champion = registry.champion("default")
    assert champion is not None
    produce_all(producer, ((k.events_topic, i.key, i.value) for i in items[2000:]))
    run_daemon(settings)  # the second run starts from the recovery store

    msgs = read_all(k.bootstrap_servers, [k.predictions_topic])  # run_daemon returned: all is written
    predictions = [orjson.loads(m.value() or b"") for m in msgs if m.topic() == k.predictions_topic]
    counts = collections.Counter(p["id"] for p in predictions)
    assert len(counts) == 4000
    # The first run ended cleanly (end of the topics) and snapshotted: nothing is predicted twice.
    assert sum(n - 1 for n in counts.values()) == 0
    first_run = {p["id"] for p in predictions if p["id"] < items[2000].key.decode()}  # type: ignore[union-attr]
    assert len(first_run) == 2000
    # The second run serves where the first stopped: its first prediction comes from the first
    # run's last champion (a promoted one, not the untrained version 1).
    boundary = items[2000].key.decode()  # type: ignore[union-attr]
    second = min((p for p in predictions if p["id"] >= boundary), key=lambda p: p["predicted_ts_ms"])
    assert second["version"] == champion.id != "default/1"
    # The candidates carried on from the snapshot too: none was retired for want of its state,
    # and the fork learned on from offsets of both runs under one version line.
    with SqliteRegistry(settings.registry.path) as registry:
        decisions = registry.decisions("default")
        assert not [d for d in decisions if "without this version's recovery state" in d.reason]
        forks = [v for v in registry.versions("default") if v.name == "fork"]
        learned_to = max(r.last for v in forks for r in v.ranges)
        learned_from = min(r.first for v in forks for r in v.ranges)
    assert learned_from == 0
    assert learned_to >= 990  # 4,000 events over 4 partitions: the last offsets are near 999


def test_restart_with_a_reordered_schema_is_refused(fresh_settings: SettingsFactory, tmp_path: Path) -> None:
    """Models that learned columns [x1, x2, x3] must never be fed [x3, x2, x1]."""
    store = tmp_path / "recovery"
    settings = fresh_settings(runtime={"tail": False, "workers": 1, "recovery_dir": str(store)})
    k = settings.kafka
    spec = WorkloadSpec(n_events=600, drift_at=600, malformed_every=0, unmatched_labels=0, delayed_share=0.0)
    items = [i for i in Workload(spec).items() if i.kind == "events"]
    producer = make_producer(k.bootstrap_servers)
    produce_all(producer, ((k.events_topic, i.key, i.value) for i in items[:300]))
    run_daemon(settings)

    reordered = with_overrides(settings, schema={"features": list(reversed(FEATURES))})
    # The manifest catches it before the daemon touches Kafka ...
    with pytest.raises(RecoveryMismatchError, match="features: the store has"):
        run_daemon(reordered)
    # ... and without the manifest, the flow itself refuses the snapshot when it resumes.
    (store / MANIFEST).unlink()
    produce_all(producer, ((k.events_topic, i.key, i.value) for i in items[300:]))
    with pytest.raises(Exception, match=r"the snapshot was made for features \['x1', 'x2', 'x3'\]"):
        run_daemon(reordered)

    predicted = read_all(k.bootstrap_servers, [k.predictions_topic])
    assert len(predicted) == 300  # the refused runs predicted nothing


def test_resume_after_retention_deleted_unread_events_reads_what_is_left(
    fresh_settings: SettingsFactory, tmp_path: Path
) -> None:
    """The stored offsets fall before the log start (retention ran while the daemon was down): the
    source must go on from the oldest event still there, not silently jump to the end."""
    settings = fresh_settings(runtime={"tail": False, "workers": 1, "recovery_dir": str(tmp_path / "recovery")})
    k = settings.kafka
    spec = WorkloadSpec(n_events=1200, drift_at=1200, malformed_every=0, unmatched_labels=0, delayed_share=0.0)
    items = [i for i in Workload(spec).items() if i.kind == "events"]
    producer = make_producer(k.bootstrap_servers)
    produce_all(producer, ((k.events_topic, i.key, i.value) for i in items[:400]))
    run_daemon(settings)  # stores the next offset of each partition

    produce_all(producer, ((k.events_topic, i.key, i.value) for i in items[400:]))
    admin = AdminClient({"bootstrap.servers": k.bootstrap_servers})
    ends = {p: high for p, (_, high) in _watermarks(k.bootstrap_servers, k.events_topic).items()}
    # delete 10 records past the stored offset of each partition: that is what retention does
    stored = collections.Counter(m.partition() or 0 for m in _first_run_events(settings))  # next offset, each
    cut = [TopicPartition(k.events_topic, p, min(stored.get(p, 0) + 10, ends[p])) for p in ends]
    for future in admin.delete_records(cut).values():
        future.result(timeout=30)
    survivors = {(m.key() or b"").decode() for m in read_all(k.bootstrap_servers, [k.events_topic])}
    assert 400 < len(survivors) < 800  # some unread events are gone, most are still there

    run_daemon(settings)

    predicted = {orjson.loads(m.value() or b"")["id"] for m in read_all(k.bootstrap_servers, [k.predictions_topic])}
    assert survivors - predicted == set()


def _first_run_events(settings: Settings) -> list[Message]:
    """The 400 events the first run read (ids sort in sending order), before any deletion."""
    events = read_all(settings.kafka.bootstrap_servers, [settings.kafka.events_topic])
    return [m for m in events if (m.key() or b"").decode() < "e00000400"]


def _watermarks(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "headwater-watermarks"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}
    finally:
        consumer.close()
