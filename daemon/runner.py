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
from typing import Any

from bytewax.run import cli_main

from daemon.config import Settings
from daemon.golden import load_golden
from daemon.recovery import prepare_recovery, source_part_names
from daemon.topics import ensure_topics
from daemon.wiring import kafka_sink, kafka_source, local_deps
from dataflows import FlowConfig, build_flow
from dataflows.kafka_io import PartNames
from dataflows.ports import Metrics
from dataflows.process_lane import start_lane_server
from learners import Learner, build_learner

__all__ = ["check_learner", "run_daemon"]

log = logging.getLogger("headwater")

Handler = Any  # what signal.signal returns: a callable, SIG_DFL/SIG_IGN or None


def run_daemon(
    settings: Settings,
    stop: threading.Event | None = None,
    *,
    create_topics: bool = True,
    metrics: Metrics | None = None,
) -> None:
    """Run until the input ends (``runtime.tail: false``) or a stop is requested; ``metrics``
    receives what the flow measures (nothing by default)."""
    stop = stop if stop is not None else threading.Event()
    config: FlowConfig = settings.flow_config(stop=stop)
    learners = check_learner(settings)
    if "torch" in sys.modules:  # a torch learner is configured
        import torch

        torch.set_num_threads(settings.runtime.torch_threads)
    if config.gate.processes and config.candidates:  # the candidates' lanes start without waiting for imports
        start_lane_server(
            (type(learner).__module__ for learner in learners), torch_threads=settings.runtime.torch_threads
        )
    if settings.promotion.golden_path is not None:
        config = dataclasses.replace(config, golden=load_golden(settings.promotion.golden_path, config.schema))
    runtime = settings.runtime
    recovery = None
    part_names: PartNames = "balanced"
    if runtime.recovery_dir is not None:  # before touching Kafka: a store that does not fit stops us
        part_names = source_part_names(runtime.recovery_dir)
        recovery = prepare_recovery(runtime.recovery_dir, runtime.recovery_partitions, config)
    if create_topics:
        ensure_topics(settings.kafka.bootstrap_servers, config.topics.all(), settings.kafka.partitions)
    deps = local_deps(
        kafka_source(config, stop, part_names),
        kafka_sink(config),
        settings.registry.path,
        seed=settings.model.seed,
        metrics=metrics,
    )
    flow = build_flow(config, deps)

    previous = _install_stop_handlers(stop)
    try:
        log.info("headwater running: %s workers, brokers %s", runtime.workers, config.brokers)
        cli_main(
            flow,
            workers_per_process=runtime.workers,
            epoch_interval=timedelta(seconds=runtime.snapshot_interval_s),
            recovery_config=recovery,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        deps.registry.close()


def check_learner(settings: Settings) -> list[Learner]:
    """Build the configured learners once (the champion's and every configured candidate's), so
    that a bad name or parameter fails at start-up with a clear message instead of inside a
    worker when the first event arrives; return them."""
    config = settings.flow_config()
    schema = config.schema
    specs = [config.learner] + [c.learner for c in config.candidates if c.learner is not None]
    return [
        build_learner(
            spec,
            n_features=len(schema.features),
            n_classes=len(schema.classes),
            feature_names=schema.features,
            categories=schema.categories,
        )
        for spec in specs
    ]


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
