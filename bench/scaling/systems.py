"""The configurations of `bench.scaling`, Headwater's process as an operator starts it (`Daemon`),
and how one configuration is measured: drained from the pre-loaded topic (`throughput_headwater`)
and fed at a fixed rate (`latency_headwater`). The plain loop is `bench.e2e_kafka.systems`'s, run
with the same knobs (`loop_params`).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.broker import (
    ADMIN,
    BenchError,
    Deadline,
    HeadwaterTopics,
    Payload,
    check_settings,
    create_topics,
    kafka_section,
    read_records,
    topic_size,
)
from bench.candidates.runs import CANDIDATE_SETS
from bench.daemon_run import cpu_ticks, decisions, micro_batches, settings_record
from bench.e2e_kafka.systems import Params as LoopParams
from bench.e2e_kafka.systems import drain
from bench.latency import Runner, in_thread, measure_latency, measured_outputs, prediction_ts, summarize_latency
from bench.report import REPO
from daemon.config import Settings, load_settings
from daemon.workload import FEATURES

FACTORS = ("processes", "workers", "batch_size", "candidates")
# 0, 2 and 4 are bench.candidates' sets; any n up to 4 is the first n of its largest (1: the fork alone,
# the default configuration's candidate).
ALL_CANDIDATES: list[dict[str, Any]] = CANDIDATE_SETS["4 candidates"]
LOG_TAIL = 3000  # characters of the daemon's log in an error


@dataclass(frozen=True)
class Config:
    """One point of a sweep: what Headwater runs with."""

    processes: int
    workers: int
    batch_size: int
    candidates: int

    @property
    def label(self) -> str:
        return f"P{self.processes} W{self.workers} B{self.batch_size} C{self.candidates}"

    def value(self, factor: str) -> int:
        return int(getattr(self, factor))


@dataclass(frozen=True)
class Params:
    bootstrap: str
    n_events: int
    rate: float
    duration_s: float
    partitions: int
    processes: tuple[int, ...]
    workers: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    candidates: tuple[int, ...]
    base: Config
    learner: str
    batch_max_wait_ms: float
    warmup_s: float
    timeout_s: float
    stop_timeout_s: float
    keep_topics: bool
    out_dir: Path

    @property
    def n_latency_events(self) -> int:
        return round(self.rate * self.duration_s)

    def sweep_values(self, factor: str) -> list[int]:
        """The values of ``factor`` that its sweep measures: those asked for and the base's, in order."""
        asked = {"processes": self.processes, "workers": self.workers, "batch_size": self.batch_sizes,
                 "candidates": self.candidates}[factor]  # fmt: skip
        return sorted({*asked, self.base.value(factor)})


def plan(p: Params) -> tuple[list[Config], dict[str, list[tuple[int, str]]]]:
    """The configurations to measure (the base first, each once) and each sweep's (value, label)."""
    configs = [p.base]
    sweeps: dict[str, list[tuple[int, str]]] = {}
    for factor in FACTORS:
        points = []
        for value in p.sweep_values(factor):
            config = Config(**{f: (value if f == factor else p.base.value(f)) for f in FACTORS})
            if config not in configs:
                configs.append(config)
            points.append((value, config.label))
        sweeps[factor] = points
    return configs, sweeps


def candidates_of(n: int) -> list[dict[str, Any]]:
    if not 0 <= n <= len(ALL_CANDIDATES):
        msg = f"{n} candidates: this benchmark has sets of 0 to {len(ALL_CANDIDATES)}"
        raise BenchError(msg)
    return ALL_CANDIDATES[:n]


def loop_params(p: Params, batch_size: int) -> LoopParams:
    """The knobs of `bench.e2e_kafka` for this run at ``batch_size``: the loop's, and the latency method's."""
    return LoopParams(
        bootstrap=p.bootstrap,
        n_events=p.n_events,
        rate=p.rate,
        duration_s=p.duration_s,
        learner=p.learner,
        workers=1,
        partitions=p.partitions,
        batch_max_size=batch_size,
        batch_max_wait_ms=p.batch_max_wait_ms,
        warmup_s=p.warmup_s,
        timeout_s=p.timeout_s,
        keep_topics=p.keep_topics,
        out_dir=p.out_dir,
    )


def settings_for(p: Params, c: Config, topics: HeadwaterTopics, registry: Path, *, tail: bool) -> Settings:
    return load_settings(
        None,
        kafka=kafka_section(p, topics),
        admin=ADMIN,
        schema={"features": list(FEATURES), "classes": [0, 1]},
        runtime={"tail": tail, "workers": c.workers},
        batching={"max_size": c.batch_size, "max_wait_ms": p.batch_max_wait_ms},
        model={"learner": p.learner, "candidates": candidates_of(c.candidates)},
        registry={"path": str(registry)},
    )


# -- the daemon's process -------------------------------------------------------------------------


def children_cpu_s() -> float:
    """User + system CPU of this process's waited-for descendants (a cluster's members included:
    the supervisor waits for them)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Daemon:
    """``python -m daemon.cli run --config <yaml> [--processes P]`` in a session of its own (so that
    a kill reaches a cluster's members too), ``HEADWATER_*``/``BYTEWAX_*`` stripped from its
    environment, its output in a log file in ``directory``."""

    def __init__(self, settings: Settings, processes: int, directory: Path) -> None:
        self.config = directory / "config.yaml"
        self.config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
        self.log = directory / "daemon.log"
        cluster = ["--processes", str(processes)] if processes > 1 else []
        self.argv = [sys.executable, "-m", "daemon.cli", "run", "--config", str(self.config), *cluster]
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            msg = "the daemon was not started"
            raise BenchError(msg)
        return self._proc

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "BYTEWAX_"))}
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(self.argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def wait(self, timeout_s: float, what: str) -> int:
        """The exit code once it ends by itself; a `BenchError` (and a kill) after ``timeout_s``."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            msg = f"{what}: the daemon did not exit within {timeout_s:g} s\n{self.tail()}"
            raise BenchError(msg) from None

    def terminate(self, bound_s: float) -> dict[str, Any]:
        """SIGTERM, as an operator stops it, then wait up to ``bound_s``: the exit code and how long
        it took (None, and a kill of the whole session, if it did not exit in time)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(bound_s)
        except subprocess.TimeoutExpired:
            code = None
            self.kill()
        seconds = time.monotonic() - t0
        return {
            "exit_code": code,
            "stopped_after_sigterm_s": round(seconds, 3) if code is not None else None,
            "exited_0_within_bound": code == 0,
            "stop_bound_s": bound_s,
        }

    def kill(self) -> None:
        """SIGKILL to the daemon's session (every process it started), if it still runs."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it ended in the meantime
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-LOG_TAIL:] if self.log.exists() else ""


# -- the measurements -----------------------------------------------------------------------------


def machine_cpus_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The whole machine (broker, benchmark and daemon) between two `cpu_ticks`, in CPUs."""
    (busy0, total0), (busy1, total1) = before, after
    return round((busy1 - busy0) / max(total1 - total0, 1) * (os.cpu_count() or 1), 2)


class CpuSampler(threading.Thread):
    """The machine's `cpu_ticks` every ``every_s`` with the wall clock, so that how busy it was can be
    read for a window known only afterwards (first to last prediction, start-up left out)."""

    def __init__(self, every_s: float = 0.1) -> None:
        super().__init__(name="bench-cpu-sampler", daemon=True)
        self.every_s = every_s
        self.samples: list[tuple[float, tuple[int, int]]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append((time.time(), cpu_ticks()))
            if self.done.wait(self.every_s):
                return

    def stop(self) -> None:
        self.done.set()
        self.join(5)

    def busy(self, start: float, end: float) -> float | None:
        """Busy CPUs between the samples at or after ``start`` and at or before ``end`` (wall clock, s);
        None when the window holds fewer than two samples."""
        inside = [ticks for t, ticks in self.samples if start <= t <= end]
        return machine_cpus_busy(inside[0], inside[-1]) if len(inside) >= 2 else None


def throughput_headwater(p: Params, c: Config, events_topic: str) -> dict[str, Any]:
    """Headwater with ``tail: false`` drains the pre-loaded ``events_topic`` and exits; every event
    must get exactly one prediction."""
    lp = loop_params(p, c.batch_size)
    topics = HeadwaterTopics.fresh("scale-tp", events=events_topic)
    create_topics(lp, topics.all(), topics.daemon_made)
    with tempfile.TemporaryDirectory(prefix="headwater-bench-scaling-") as tmp:
        settings = settings_for(p, c, topics, Path(tmp) / "registry", tail=False)
        check_settings(settings, topics)
        daemon = Daemon(settings, c.processes, Path(tmp))
        seen: dict[str, Any] = {}

        sampler = CpuSampler()

        def run() -> None:
            seen["cpu0"], seen["wall0"] = children_cpu_s(), time.time()
            sampler.start()
            daemon.start()
            try:
                seen["exit_code"] = daemon.wait(p.timeout_s, f"{c.label} throughput")
            finally:
                daemon.kill()
                sampler.stop()
            seen["cpu1"] = children_cpu_s()
            if seen["exit_code"] != 0:
                msg = f"{c.label} throughput: the daemon exited with {seen['exit_code']}\n{daemon.tail()}"
                raise BenchError(msg)
            served = topic_size(p.bootstrap, topics.predictions, p.partitions)
            if served != p.n_events:
                msg = f"{c.label} throughput: {served} predictions for {p.n_events} events\n{daemon.tail()}"
                raise BenchError(msg)

        def extra() -> dict[str, Any]:
            return {
                "exit_code": seen["exit_code"],
                "dead_letters": topic_size(p.bootstrap, topics.dead_letters, p.partitions),
                "decisions": decisions(read_records(p, topics.model_events, Deadline(p.timeout_s, "model events"))),
                "daemon_cpu_s": round(seen["cpu1"] - seen["cpu0"], 2),
            }

        result = drain(lp, run, topics.predictions, extra)
    first_output = seen["wall0"] + result["first_output_after_s"]
    result["machine_cpus_busy"] = sampler.busy(first_output, first_output + result["output_span_s"])
    if result["unique_outputs"] != p.n_events or result["outputs"] != p.n_events:
        msg = (
            f"{c.label} throughput: {result['outputs']} predictions ({result['unique_outputs']} distinct) "
            f"for {p.n_events} events"
        )
        raise BenchError(msg)
    result.pop("process_cpu_s")  # this process's, which only waited: daemon_cpu_s is the daemon's
    result["startup_s"] = result["first_output_after_s"]
    result["settings"] = settings_record(settings, "model", "batching", "runtime")
    result["lanes"] = "process" if settings.lane_processes() else "thread"
    return result


def latency_headwater(p: Params, c: Config, events: list[Payload]) -> dict[str, Any]:
    """``events`` at ``p.rate`` through Headwater with ``tail: true`` (`bench.latency`), then SIGTERM:
    the process must exit 0 within ``p.stop_timeout_s``."""
    lp = loop_params(p, c.batch_size)
    topics = HeadwaterTopics.fresh("scale-lat")
    create_topics(lp, topics.all(), topics.daemon_made)
    with tempfile.TemporaryDirectory(prefix="headwater-bench-scaling-") as tmp:
        settings = settings_for(p, c, topics, Path(tmp) / "registry", tail=True)
        check_settings(settings, topics)
        daemon = Daemon(settings, c.processes, Path(tmp))
        stopped: dict[str, Any] = {}

        def start(stop: threading.Event, deadline: Deadline) -> Runner:
            def serve() -> None:
                daemon.start()
                try:
                    while not stop.wait(0.1):
                        code = daemon.proc.poll()
                        if code is not None:
                            msg = f"{c.label}: the daemon exited with {code} before the stop\n{daemon.tail()}"
                            raise BenchError(msg)
                    stopped.update(daemon.terminate(p.stop_timeout_s))
                finally:
                    daemon.kill()

            return in_thread(f"bench-headwater-{c.label}", serve)

        cpu0, ticks0 = children_cpu_s(), cpu_ticks()
        run = measure_latency(lp, c.label, events, topics.events, topics.predictions, start)
        cpu1, ticks1 = children_cpu_s(), cpu_ticks()
        if not stopped:  # the thread did not get as far as the stop
            stopped = {"exit_code": None, "stopped_after_sigterm_s": None, "exited_0_within_bound": False,
                       "stop_bound_s": p.stop_timeout_s}  # fmt: skip
        if not stopped["exited_0_within_bound"]:
            stopped["log_tail"] = daemon.tail()
    outputs, _ = measured_outputs(run, prediction_ts)
    result = summarize_latency(run, prediction_ts)
    result["bench_process_cpu_s"] = result.pop("process_cpu_s")  # the producer and the reader
    result |= stopped
    result["dead_letters"] = topic_size(p.bootstrap, topics.dead_letters, p.partitions)
    result["micro_batches"] = micro_batches(outputs)
    result["daemon_cpu_s"] = round(cpu1 - cpu0, 2)
    result["machine_cpus_busy_start_to_stop"] = machine_cpus_busy(ticks0, ticks1)
    return result
