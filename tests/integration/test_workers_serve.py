"""Every worker serves the partitions it reads: no worker is only a decoder for another."""

from __future__ import annotations

import collections
import threading
import uuid

import orjson
import pytest

from daemon.config import with_overrides
from daemon.kafka_client import make_producer, produce_all, read_all
from daemon.runner import run_daemon
from daemon.topics import delete_topics, ensure_topics
from daemon.workload import Workload, WorkloadSpec
from dataflows.ports import NullMetrics
from tests.integration.conftest import SettingsFactory

pytestmark = pytest.mark.kafka


class ServedByThread(NullMetrics):
    """Counts served events per thread: each Bytewax worker is a thread of its own."""

    def __init__(self) -> None:
        self.by_thread: collections.Counter[int] = collections.Counter()
        self._lock = threading.Lock()

    def served(self, group: str, route: str, n: int, latency_s: float) -> None:
        with self._lock:
            self.by_thread[threading.get_ident()] += n


def test_two_workers_each_serve_about_half_of_eight_partitions(fresh_settings: SettingsFactory) -> None:
    base = fresh_settings(runtime={"tail": False, "workers": 2})
    events_topic = f"it-{uuid.uuid4().hex[:10]}.events8"
    ensure_topics(base.kafka.bootstrap_servers, [events_topic], partitions=8)
    try:
        settings = with_overrides(base, kafka={"events_topic": events_topic})
        spec = WorkloadSpec(n_events=8000, drift_at=8000, malformed_every=0, unmatched_labels=0, delayed_share=0.0)
        items = [i for i in Workload(spec).items() if i.kind == "events"]
        produce_all(make_producer(settings.kafka.bootstrap_servers), ((events_topic, i.key, i.value) for i in items))
        metrics = ServedByThread()
        run_daemon(settings, metrics=metrics)

        msgs = read_all(settings.kafka.bootstrap_servers, [settings.kafka.predictions_topic])
        ids = [orjson.loads(m.value() or b"")["id"] for m in msgs]
        assert len(ids) == len(set(ids)) == 8000  # every event served once
        assert sum(metrics.by_thread.values()) == 8000
        shares = sorted(n / 8000 for n in metrics.by_thread.values())
        assert len(shares) == 2, metrics.by_thread  # both workers served
        assert all(0.35 <= share <= 0.65 for share in shares), shares
    finally:
        delete_topics(base.kafka.bootstrap_servers, [events_topic])
