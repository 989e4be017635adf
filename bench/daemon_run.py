"""A daemon measured at a fixed rate, and what its topics said afterwards: used by `bench.candidates`
(0, 2, 4 candidates and a slow one) and `bench.moa` (ARF as champion at 5,000 events/s).

`measure_daemon` gives the daemon fresh topics and a fresh registry, runs it in a thread while
`bench.latency.measure_latency` sends the events (not every output is required: a run that cannot
serve everything is a result), and reads its model events back. The summaries below are read from
those records: each model's ``report`` records (`models`), the decisions (`decisions`), and the
served micro-batches and latency per second of the measured predictions (`micro_batches`, `timeline`).
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.broker import (
    Deadline,
    HeadwaterTopics,
    Payload,
    Received,
    check_settings,
    create_topics,
    read_records,
)
from bench.latency import (
    LatencyKnobs,
    LatencyRun,
    batch_summary,
    headwater_in_thread,
    measure_latency,
    measured_outputs,
    percentiles,
    prediction_ts,
)
from daemon.config import Settings

__all__ = [
    "DaemonRun",
    "decision",
    "decisions",
    "measure_daemon",
    "micro_batches",
    "models",
    "settings_record",
    "timeline",
]

Outputs = list[tuple[Received, int]]  # the first output of each measured event, with its input timestamp


@dataclass(frozen=True)
class DaemonRun:
    """One daemon's run: its topics and settings, what the reader saw, and its model events."""

    topics: HeadwaterTopics
    settings: Settings
    run: LatencyRun
    outputs: Outputs
    model_events: list[dict[str, Any]]
    cpu_ticks: tuple[tuple[int, int], tuple[int, int]]  # the machine's busy and total ticks, before and after

    @property
    def last_output_ms(self) -> float:
        """When the last measured prediction arrived (the stop request, without any)."""
        return max((item[0] for item, _ in self.outputs), default=self.run.stop_requested_ms)

    def machine_cpus_busy(self, cpus: int) -> float:
        """The whole machine (broker, producer, reader included), warm-up to stop, in CPUs."""
        (busy0, total0), (busy1, total1) = self.cpu_ticks
        return round((busy1 - busy0) / max(total1 - total0, 1) * cpus, 2)


def cpu_ticks() -> tuple[int, int]:
    """Busy and total CPU ticks of the whole machine so far (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def measure_daemon(
    p: LatencyKnobs,
    phase: str,
    label: str,
    events: list[Payload],
    settings_for: Callable[[HeadwaterTopics, Path], Settings],
) -> DaemonRun:
    """``events`` at ``p.rate`` through a daemon with ``settings_for(topics, registry)`` on fresh topics
    (named after ``phase``) and a fresh registry; then its model events, read back."""
    topics = HeadwaterTopics.fresh(phase)
    create_topics(p, topics.all(), topics.daemon_made)
    with tempfile.TemporaryDirectory(prefix="headwater-bench-registry-") as registry:
        settings = settings_for(topics, Path(registry))
        check_settings(settings, topics)
        start = headwater_in_thread(settings)
        before = cpu_ticks()
        run = measure_latency(p, label, events, topics.events, topics.predictions, start, require_all=False)
        after = cpu_ticks()
    outputs, _ = measured_outputs(run, prediction_ts)
    model_events = read_records(p, topics.model_events, Deadline(p.timeout_s, "model events"))
    return DaemonRun(topics, settings, run, outputs, model_events, (before, after))


def settings_record(settings: Settings, *sections: str) -> dict[str, Any]:
    """The named sections of the daemon's settings, as they were, for the JSON."""
    return {name: getattr(settings, name).model_dump(mode="json") for name in sections}


def decision(event: dict[str, Any]) -> str:
    """The action, with the group's first champion (a promote that replaces nothing) told apart."""
    action = str(event.get("action"))
    return "install" if action == "promote" and event.get("previous") is None else action


def decisions(events: list[dict[str, Any]]) -> dict[str, int]:
    """How many decisions of each kind (`decision`) the model events hold."""
    return dict(Counter(decision(e) for e in events if e.get("type") == "decision"))


def micro_batches(outputs: Outputs) -> dict[str, Any]:
    """Measured events per served micro-batch (predictions of one batch share ``predicted_ts_ms``)."""
    sizes = Counter(orjson.loads(item[3] or b"{}").get("predicted_ts_ms") for item, _ in outputs)
    counts = list(sizes.values())
    return batch_summary(len(counts), sum(counts), max(counts, default=0))


def timeline(outputs: Outputs) -> list[dict[str, float]]:
    """Latency per second of input time: where in the run the slow outputs were."""
    if not outputs:
        return []
    first = min(ts for _, ts in outputs)
    buckets: dict[int, list[float]] = defaultdict(list)
    for item, ts in outputs:
        buckets[int((ts - first) // 1000)].append(item[0] - ts)
    out = []
    for second in sorted(buckets):
        arr = np.asarray(buckets[second])
        p50, p99 = np.percentile(arr, [50, 99]).tolist()
        out.append({"s": second, "n": len(arr), "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
                    "max_ms": round(float(arr.max()), 1)})  # fmt: skip
    return out


def models(events: list[dict[str, Any]], last_output_ms: float) -> dict[str, dict[str, Any]]:
    """Per model (slot), from its ``report`` records: what it scored and learned, how far behind it was."""
    reports: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e.get("type") == "report" and e.get("role") != "serving":
            reports[str(e["model"])].append(e)
    out: dict[str, dict[str, Any]] = {}
    for name, rs in reports.items():
        rs.sort(key=lambda r: (r["ts_ms"], r["batch"]))
        serving = [r for r in rs if r["ts_ms"] <= last_output_ms]
        lags = [int(r.get("lag_batches", 0)) for r in rs]
        out[name] = {
            "role": rs[-1]["role"],
            "versions": sorted({str(r["version"]) for r in rs}),
            "reports": len(rs),
            "labelled_scored": sum(int(r.get("n_labelled", 0)) for r in rs),
            "learned": sum(int(r.get("n_learned", 0)) for r in rs),
            "learned_while_serving": sum(int(r.get("n_learned", 0)) for r in serving),
            "lag_batches_max": max(lags, default=0),
            "lag_batches_at_last_prediction": int(serving[-1].get("lag_batches", 0)) if serving else None,
            "lag_batches_final": lags[-1] if lags else None,
            "skipped_batches_total": max((int(r.get("skipped_batches_total", 0)) for r in rs), default=0),
            "errors": sum(1 for r in rs if r.get("error") and "skipped batch" not in str(r["error"])),
            "learn_ms": percentiles([float(r.get("learn_ms", 0.0)) for r in rs if r.get("n_learned")]),
            "rolling_accuracy_final": rs[-1].get("rolling_accuracy"),
        }
    return out
