"""`AdminService`: the admin API with what it needs beside the daemon's own collaborators — the
command sink, the report follower, readiness — built from the settings, started and stopped as
one. The daemon hands it its registry, serving board and metrics.

    admin = AdminService(settings, deps.registry, deps.board, collector=collector, http_metrics=metrics)
    admin.start()            # returns once it listens on admin.host:admin.port (admin.port 0: see admin.port)
    ...
    admin.stop()             # before the registry closes
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from daemon.api.app import create_app
from daemon.api.deps import ApiDeps, HttpMetrics
from daemon.api.health import BrokerProbe, Readiness, serving_check
from daemon.api.producer import KafkaCommandSink
from daemon.api.reports import ModelReports, ReportFollower
from daemon.api.server import AdminServer
from daemon.config import Settings
from dataflows.ports import Registry
from dataflows.serve import ServingBoard

__all__ = ["AdminService"]


class AdminService:
    """``readiness`` asks the broker (through the command sink's connection) and whether ``board``
    serves the group; the daemon sets and clears its own reasons on it (``recovering``)."""

    def __init__(
        self, settings: Settings, registry: Registry, board: ServingBoard | None, *,
        collector: CollectorRegistry | None = None, http_metrics: HttpMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        k = settings.kafka
        self.commands = KafkaCommandSink(k.bootstrap_servers, settings.kafka_config("producer"))
        self.reports = ModelReports()
        self.follower = ReportFollower(k.bootstrap_servers, k.model_events_topic, self.reports,
                                       settings.kafka_config("consumer"))  # fmt: skip
        self.readiness = Readiness(BrokerProbe(self.commands), serving_check(board, registry, settings.model.group))
        deps = ApiDeps(
            registry=registry, commands=self.commands, board=board, reports=self.reports,
            collector=collector if collector is not None else CollectorRegistry(), readiness=self.readiness,
            http_metrics=http_metrics, clock=clock,
        )  # fmt: skip
        self.app = create_app(settings, deps)
        self.server = AdminServer(self.app, settings.admin.host, settings.admin.port)

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        self.server.start()  # first: a port in use fails before any thread is started
        self.follower.start()

    def stop(self) -> None:
        self.server.stop()
        self.follower.stop()
        self.follower.join(5)
        self.commands.close()
