"""Run the dataflow in this process, with graceful shutdown on SIGTERM/SIGINT.

A signal sets the flow's stop event: the Kafka source partitions end, the last micro-batches are
processed and flushed, the sink waits for the broker's acknowledgements, and — with a recovery
store — the final state is snapshotted. A second signal stops at once.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from datetime import timedelta
from types import FrameType
from typing import Any, cast

from bytewax.recovery import RecoveryConfig
from bytewax.run import cli_main
from confluent_kafka import OFFSET_BEGINNING
from prometheus_client import CollectorRegistry, ProcessCollector

from daemon.api import RECOVERING, AdminService, HttpMetrics
from daemon.cluster import Member
from daemon.config import ConfigError, Settings
from daemon.golden import load_golden
from daemon.gpu import register_gpu
from daemon.metrics import PrometheusMetrics
from daemon.recovery import prepare_recovery, source_part_names
from daemon.serving_log import ServingFollower, ServingLog
from daemon.topics import ensure_topics, require_one_partition
from daemon.wiring import kafka_sink, kafka_source, local_deps
from dataflows import FlowConfig, FlowDeps, StoppableKafkaSource, build_flow, install_champion
from dataflows.kafka_io import PartNames
from dataflows.ports import Decision, Metrics
from dataflows.process_lane import start_lane_server
from dataflows.records import encode_model_event
from dataflows.serve import ServingTable
from dataflows.train.state import decision_record
from learners import Learner

__all__ = ["check_learner", "control_source", "daemon_collector", "run_daemon"]

log = logging.getLogger("headwater")

Handler = Any  # what signal.signal returns: a callable, SIG_DFL/SIG_IGN or None


def run_daemon(
    settings: Settings,
    stop: threading.Event | None = None,
    *,
    create_topics: bool = True,
    metrics: Metrics | None = None,
    collector: CollectorRegistry | None = None,
    member: Member | None = None,
    table_wait_s: float = 120.0,
) -> None:
    """Run until the input ends (``runtime.tail: false``) or a stop is requested; ``metrics``
    receives what the flow measures (nothing by default); ``collector`` is the Prometheus registry
    the admin API's ``/metrics`` exports (with GPU telemetry: `daemon.gpu`).

    ``member``: this process's place in a cluster (`daemon.cluster`); None runs alone. The first
    process (or the only one) prepares what the cluster shares — topics, the recovery store, the
    group's champion on the serving-table topic — and the others wait, up to ``table_wait_s``,
    until they serve the registry's champion from that topic before they start.
    """
    stop = stop if stop is not None else threading.Event()
    # From the first instant: a SIGTERM while the daemon starts (a pod deleted as it comes up) is a
    # graceful stop too, not death by the default handler.
    previous = _install_stop_handlers(stop)
    try:
        _run(settings, stop, create_topics=create_topics, metrics=metrics, collector=collector, member=member,
             table_wait_s=table_wait_s)  # fmt: skip
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(
    settings: Settings, stop: threading.Event, *, create_topics: bool, metrics: Metrics | None,
    collector: CollectorRegistry | None, member: Member | None, table_wait_s: float,
) -> None:  # fmt: skip
    """`run_daemon`'s work, its stop handlers installed."""
    settings = for_processes(settings, 1 if member is None else len(member.addresses))
    config: FlowConfig = settings.flow_config(stop=stop)
    collector = collector if collector is not None else daemon_collector()
    outputs = [config.topics.predictions, config.topics.dead_letters, config.topics.model_events]
    prometheus = PrometheusMetrics(collector, outputs=outputs) if metrics is None else None
    metrics = prometheus if prometheus is not None else metrics
    first = member is None or member.first
    if member is not None and len(member.addresses) > 1 and config.vote is not None:
        msg = "model.vote serves from the memory of the process that trains; run one process, or turn the vote off"
        raise ConfigError(msg)
    if member is not None and len(member.addresses) > 1 and config.gate.live_refresh:
        msg = ("promotion.live_refresh serves the refresh fork from the memory of the process that trains it; "
               "run one process, or turn live_refresh off")  # fmt: skip
        raise ConfigError(msg)
    learners = check_learner(settings)
    if "torch" in sys.modules:  # a torch learner is configured
        import torch

        torch.set_num_threads(settings.runtime.torch_threads)
    if config.gate.processes and config.candidates:  # the candidates' lanes start without waiting for imports
        # ... and what the CLI imports: every lane's process imports the main module again (the
        # `headwater` script imports `daemon.cli`), a third of a second each unless the server has.
        modules = [type(learner).__module__ for learner in learners]
        start_lane_server([*modules, "daemon.cli"], torch_threads=settings.runtime.torch_threads)
    if settings.promotion.golden_path is not None:
        config = dataclasses.replace(config, golden=load_golden(settings.promotion.golden_path, config.schema))
    runtime, topics = settings.runtime, config.topics
    assert topics.serving is not None  # Settings.topics() always names it
    if first and runtime.recovery_dir is not None:  # before touching Kafka: a store that does not fit stops us
        prepare_recovery(runtime.recovery_dir, runtime.recovery_partitions, config)
    assert topics.control is not None  # Settings.topics() always names it
    admin_client, replicas = settings.kafka_config("admin"), settings.kafka.replication_factor
    if first:
        if create_topics:
            ensure_topics(config.brokers, topics.all(), settings.kafka.partitions, replicas, client=admin_client)
        ensure_topics(config.brokers, [topics.serving], 1, replicas, config={"cleanup.policy": "compact"},
                      client=admin_client)  # fmt: skip
        ensure_topics(config.brokers, [topics.control], 1, replicas, client=admin_client)
        if topics.quarantine:  # made even when the others are not, as the two above: a newer output
            ensure_topics(config.brokers, [topics.quarantine], settings.kafka.partitions, replicas, client=admin_client)
        require_one_partition(config.brokers, topics.control, "control topic", client=admin_client)
    # A new store is "balanced"; one made before the names were balanced says "legacy" in a manifest
    # written long ago: the processes that do not prepare the store may read it at once.
    part_names = source_part_names(runtime.recovery_dir) if runtime.recovery_dir is not None else "balanced"
    tables = ServingLog(config.brokers, topics.serving, config.producer_config)
    deps = local_deps(kafka_source(config, stop, part_names, metrics), kafka_sink(config, metrics),
                      settings.registry.path, seed=settings.model.seed, metrics=metrics, tables=tables)  # fmt: skip
    deps = dataclasses.replace(deps, control=control_source(config, stop, part_names, metrics))
    admin = _admin(settings, deps, collector)
    if prometheus is not None and admin is not None:
        readiness = admin.readiness
        prometheus.ready_from(lambda: not readiness.reasons())
    # A process that no longer learns who serves must not go on serving: it stops, and says why.
    follower = ServingFollower(config.brokers, topics.serving, config.group, deps.registry, deps.board,
                               config.consumer_config, on_error=lambda _: stop.set())  # fmt: skip
    follower.start()
    try:
        if admin is not None:
            admin.readiness.set(RECOVERING)  # until this process serves and its flow is built
            admin.start()  # /healthz answers while the champion is installed; a port in use fails here
        installed = _serve_champion(config, deps, follower, tables, member, table_wait_s)
        if not first:  # the first process made the topics before it published the table waited for
            require_one_partition(config.brokers, topics.control, "control topic", client=admin_client)
        # prepared by the first process before it published the table waited for
        recovery = RecoveryConfig(str(runtime.recovery_dir)) if runtime.recovery_dir is not None else None
        flow = build_flow(config, deps, installed=installed)
        # Take SIGTERM/SIGINT back: a JVM started since (MOA's learners, through JPype) installs
        # its own handlers, and a SIGTERM would then never reach the graceful stop.
        _install_stop_handlers(stop)
        if admin is not None:
            admin.readiness.clear(RECOVERING)
        elif prometheus is not None:
            prometheus.set_ready(True)
        where = f"process {member.process_id} of {len(member.addresses)}, " if member is not None else ""
        log.info("headwater running: %s%s workers, brokers %s", where, runtime.workers, config.brokers)
        cli_main(
            flow,
            workers_per_process=runtime.workers,
            process_id=member.process_id if member is not None else None,
            addresses=list(member.addresses) if member is not None else None,
            epoch_interval=timedelta(seconds=runtime.snapshot_interval_s),
            recovery_config=recovery,
        )
        if follower.error is not None:
            msg = f"stopped: the serving-table follower of {topics.serving} failed: {follower.error}"
            raise RuntimeError(msg) from follower.error
    finally:
        if admin is not None:
            admin.stop()
        follower.stop()
        follower.join(5)  # its consumer closed before the registry it loads models from
        tables.close()
        deps.registry.close()


def for_processes(settings: Settings, processes: int) -> Settings:
    """``settings`` as a cluster of ``processes`` runs them: the vote serves from the training
    process's lanes, so with ``model.vote.enabled: auto`` a cluster serves the champion, and the
    default portfolio's candidates learn beside it with their usual gates (logged). A vote turned on
    explicitly is refused later, with the reason."""
    if processes <= 1 or settings.model.vote.enabled != "auto" or not settings.voting():
        return settings
    log.warning("model.vote.enabled auto: the vote is off in a cluster of %d processes; the candidates learn in "
                "shadow", processes)  # fmt: skip
    vote = settings.model.vote.model_copy(update={"enabled": False})
    return settings.model_copy(update={"model": settings.model.model_copy(update={"vote": vote})})


def daemon_collector() -> CollectorRegistry:
    """The Prometheus registry a daemon's /metrics exports when none is handed in: GPU telemetry
    and the process's own series (prometheus-client puts those on its default registry only);
    `PrometheusMetrics` adds Headwater's."""
    collector = CollectorRegistry()
    register_gpu(collector)
    ProcessCollector(registry=collector)  # process_resident_memory_bytes, CPU seconds, open fds
    return collector


def _admin(settings: Settings, deps: FlowDeps, collector: CollectorRegistry) -> AdminService | None:
    """The admin API on ``admin.port`` (`daemon.api`), unless ``admin.enabled`` is false."""
    if not settings.admin.enabled:
        return None
    counts_http = callable(getattr(deps.metrics, "http_request", None))  # PrometheusMetrics does
    http = cast(HttpMetrics, deps.metrics) if counts_http else None
    return AdminService(settings, deps.registry, deps.board, collector=collector, http_metrics=http)


def _serve_champion(
    config: FlowConfig, deps: FlowDeps, follower: ServingFollower, tables: ServingLog, member: Member | None,
    wait_s: float,
) -> Decision | None:  # fmt: skip
    """The board serves the group's champion before the flow starts. The first process installs
    it (after reading the topic's last table, so that numbering goes on from it); the others wait
    for the table naming the registry's champion. Returns the install decision for the flow to
    emit — in a cluster the first process emits it itself: the train step may run elsewhere."""
    if member is not None and not member.first:
        registry = deps.registry

        def champion_serves(table: ServingTable) -> bool:
            info = registry.champion(config.group)
            return info is not None and table.champion.version == info.id

        follower.wait(wait_s, champion_serves)
        return None
    follower.wait(wait_s)  # the topic's last table: numbering goes on from it
    installed = install_champion(config, deps)
    if installed is not None and member is not None:
        tables.emit(encode_model_event(decision_record(installed), config.topics.model_events))
        return None
    return installed


def control_source(
    config: FlowConfig, stop: threading.Event, part_names: PartNames, metrics: Metrics | None = None
) -> StoppableKafkaSource:
    """Operators' commands (`dataflows.control`), from the beginning of the control topic (or the
    recovery store's offset): the train step skips what its state or the registry's command log
    says it handled already."""
    assert config.topics.control is not None
    return StoppableKafkaSource(
        [config.brokers], [config.topics.control], tail=config.tail, starting_offset=OFFSET_BEGINNING,
        add_config=dict(config.consumer_config), batch_size=64, stop=stop, part_names=part_names, metrics=metrics,
    )  # fmt: skip


def check_learner(settings: Settings) -> list[Learner]:
    """Build the configured learners once (the champion's and every configured candidate's), so
    that a bad name or parameter fails at start-up with a clear message instead of inside a
    worker when the first event arrives; return them."""
    config = settings.flow_config()
    return [config.build(spec) for spec in [config.learner] + [c.learner for c in config.candidates if c.learner]]


def _install_stop_handlers(stop: threading.Event) -> dict[signal.Signals, Handler]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # second signal: stop now
        log.warning("signal %s: finishing the current micro-batches, then stopping", signum)
        stop.set()

    previous: dict[signal.Signals, Handler] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handle)
    return previous
