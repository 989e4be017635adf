"""Integration tests run against the real local Kafka broker (started here if it is not up)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from daemon.config import Settings, load_settings
from daemon.kafka_local import KafkaLocal
from daemon.runner import run_daemon
from daemon.topics import delete_topics, ensure_topics
from daemon.workload import CLASSES, FEATURES


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    given = os.environ.get("HEADWATER_TEST_BOOTSTRAP")
    if given:
        return given
    kafka = KafkaLocal.from_env()
    kafka.up()  # idempotent; raises with a clear message if Java or Maven is missing
    return kafka.bootstrap


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def fresh_settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SettingsFactory]:
    """Settings on fresh topics (4 partitions each) and a fresh registry, so tests never see each
    other's messages or models. The topics are deleted after the test: a broker loads every
    partition on disk when it starts, and runs of the suite would otherwise pile up thousands."""
    made: list[str] = []

    def make(*, default_model: bool = False, **overrides: object) -> Settings:
        run = uuid.uuid4().hex[:10]
        kafka = {
            "bootstrap_servers": kafka_bootstrap,
            "events_topic": f"it-{run}.events",
            "labels_topic": f"it-{run}.labels",
            "predictions_topic": f"it-{run}.predictions",
            "dead_letter_topic": f"it-{run}.dead-letters",
            "model_events_topic": f"it-{run}.model-events",
            "partitions": 4,
        }
        data: dict[str, object] = {
            "kafka": kafka,
            "schema": {"features": list(FEATURES), "classes": list(CLASSES)},
            "runtime": {"tail": False, "workers": 1},
            "admin": {"port": 0},  # a free port: tests never fight over one
            "registry": {"path": str(tmp_path_factory.mktemp("registry"))},
        }
        # One fork beside the champion unless a test names its candidates: what these tests were
        # written against; ``default_model``: the defaults (the default portfolio, `test_vote_kafka.py`).
        if not default_model:
            pinned = {"candidates": [{"name": "fork"}]}
            overrides["model"] = pinned | dict(overrides.get("model") or {})  # type: ignore[call-overload]
        settings = load_settings(None, **(data | overrides))
        ensure_topics(kafka_bootstrap, settings.topics().all(), partitions=4)
        made.extend([*settings.topics().all(), str(settings.topics().serving), str(settings.topics().control)])
        return settings

    yield make
    delete_topics(kafka_bootstrap, made)


@dataclass
class BackgroundDaemon:
    """`run_daemon` in a thread, as a tailing daemon runs; ``stop()`` asks it to finish."""

    settings: Settings
    stop_event: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> BackgroundDaemon:
        def target() -> None:
            try:
                run_daemon(self.settings, self.stop_event)
            except BaseException as exc:  # the tests assert that there are none
                self.errors.append(exc)

        self.thread = threading.Thread(target=target, name="headwater-under-test")
        self.thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self, timeout_s: float = 60) -> bool:
        """Ask for a graceful stop; True if the daemon ended within ``timeout_s``."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=timeout_s)
        return not self.alive
