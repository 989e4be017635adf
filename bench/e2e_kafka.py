"""End-to-end benchmark through the real broker: Headwater vs a plain confluent-kafka loop.

Both systems see the same events (same count, same payloads, same topic layout) in the same run:

* **throughput** — N events are pre-loaded on an events topic; each system reads it from the
  beginning and writes one output per event. Headwater runs with ``runtime.tail: false``, so
  ``run_daemon`` returns once the topics are drained and the sink has every acknowledgement; the
  baseline stops once it has consumed N messages and flushed. events/s = N / wall seconds.
* **latency** — each system runs in a thread (Headwater with ``tail: true``) while a producer
  thread sends events at a fixed rate and a reader thread consumes the output topic. Latency is
  the reader's receive time minus the input message's Kafka timestamp (set when the input was
  produced): Headwater's predictions carry it as ``event_ts_ms``, the baseline copies it into an
  ``in_ts_ms`` header. Warm-up events (other ids) are sent first and not counted.

The baseline is the least a Kafka-in/Kafka-out service can do: ``Consumer.consume`` a batch
(``batch.max_size`` messages or ``batch.max_wait_ms``, Headwater's micro-batch knobs), produce
each message to the output topic with the producer settings of Headwater's sink (idempotent,
acks=all, linger.ms=2, lz4), flush per batch. Like Bytewax's Kafka source it ``assign``s the
partitions (no consumer-group rebalance) and starts at the beginning.

Run from the repository root with the broker up (``python3 -m daemon.kafka_local up``)::

    .venv/bin/python -m bench.e2e_kafka            # writes bench/results/e2e_kafka.{json,md}
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from bench.common import (
    CREATED,
    BenchError,
    Deadline,
    Headers,
    HeadwaterTopics,
    Payload,
    Received,
    Runner,
    check_settings,
    cpu_seconds,
    create_topics,
    delete_topics,
    machine_info,
    make_events,
    measure_latency,
    new_consumer,
    partitions_of,
    ratio,
    read_topic,
    render_text,
    summarize_latency,
    topic_size,
)
from daemon.config import Settings, load_settings
from daemon.kafka_client import make_producer, produce_all
from daemon.runner import run_daemon
from daemon.workload import FEATURES

log = logging.getLogger("bench.e2e_kafka")

RESULTS = Path(__file__).resolve().parent / "results"
IN_TS_HEADER = "in_ts_ms"


# -- parameters -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    bootstrap: str
    n_events: int
    rate: float
    duration_s: float
    learner: str
    workers: int
    partitions: int
    batch_max_size: int
    batch_max_wait_ms: float
    warmup_s: float
    timeout_s: float
    keep_topics: bool
    out_dir: Path

    @property
    def n_latency_events(self) -> int:
        return round(self.rate * self.duration_s)


def parse_args(argv: list[str] | None = None) -> Params:
    parser = argparse.ArgumentParser(
        prog="python -m bench.e2e_kafka",
        description="Headwater vs a plain confluent-kafka consume/produce loop, through the real broker.",
    )
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("-n", "--n-events", type=int, default=50_000, help="events in the throughput phase")
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s sent in the latency phase")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of sending in the latency phase")
    parser.add_argument("--learner", default="river-logreg", help="Headwater learner (built-in or module:factory)")
    parser.add_argument("--workers", type=int, default=1, help="Bytewax worker threads for Headwater")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of every fresh topic")
    parser.add_argument("--batch-size", type=int, default=512, help="micro-batch size (both systems)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="micro-batch wait (both systems)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up sending before latency")
    parser.add_argument("--timeout", type=float, default=120.0, help="bound on every wait of a phase, seconds")
    parser.add_argument("--keep-topics", action="store_true", help="do not delete the benchmark's topics")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where the JSON and Markdown go")
    a = parser.parse_args(argv)
    for name in (
        "n_events",
        "rate",
        "duration",
        "workers",
        "partitions",
        "batch_size",
        "max_wait_ms",
        "timeout",
    ):
        if getattr(a, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return Params(
        bootstrap=a.bootstrap,
        n_events=a.n_events,
        rate=a.rate,
        duration_s=a.duration,
        learner=a.learner,
        workers=a.workers,
        partitions=a.partitions,
        batch_max_size=a.batch_size,
        batch_max_wait_ms=a.max_wait_ms,
        warmup_s=max(a.warmup, 0.0),
        timeout_s=a.timeout,
        keep_topics=a.keep_topics,
        out_dir=a.out_dir,
    )


# -- helpers --------------------------------------------------------------------------------------


def steady_rate(n: int, out_ts_ms: list[int]) -> float | None:
    """Events/s between the first and the last output (start-up excluded)."""
    span_s = (max(out_ts_ms) - min(out_ts_ms)) / 1000 if out_ts_ms else 0.0
    return round((n - 1) / span_s, 1) if span_s > 0 else None


# -- the two systems ------------------------------------------------------------------------------


def headwater_settings(p: Params, topics: HeadwaterTopics, *, tail: bool) -> Settings:
    return load_settings(
        None,
        kafka={
            "bootstrap_servers": p.bootstrap,
            "events_topic": topics.events,
            "labels_topic": topics.labels,
            "predictions_topic": topics.predictions,
            "dead_letter_topic": topics.dead_letters,
            "model_events_topic": topics.model_events,
            "partitions": p.partitions,
        },
        schema={"features": list(FEATURES), "classes": [0, 1]},
        runtime={"tail": tail, "workers": p.workers},
        batching={"max_size": p.batch_max_size, "max_wait_ms": p.batch_max_wait_ms},
        model={"learner": p.learner},
        # a fresh registry per run: a run must not start from an earlier run's champion
        registry={"path": tempfile.mkdtemp(prefix="headwater-bench-registry-")},
    )


@dataclass
class BaselineStats:
    consumed: int = 0
    produced: int = 0
    batches: int = 0
    largest: int = 0


def baseline_loop(
    p: Params,
    in_topic: str,
    out_topic: str,
    stop: threading.Event,
    deadline: Deadline,
    until: int | None = None,
    stats: BaselineStats | None = None,
) -> BaselineStats:
    """Consume a batch, produce each message to ``out_topic``, flush; until ``until`` messages or ``stop``.

    The output keeps the input's key and value and carries the input's Kafka timestamp in a header.
    """
    consumer = new_consumer(p.bootstrap)
    consumer.assign(partitions_of(in_topic, p.partitions))
    producer = Producer(
        {
            "bootstrap.servers": p.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "compression.type": "lz4",
            "client.id": "bench-baseline",
        }
    )
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(str(err))

    stats = stats if stats is not None else BaselineStats()
    wait_s = p.batch_max_wait_ms / 1000
    produce, poll = producer.produce, producer.poll
    try:
        while not stop.is_set() and (until is None or stats.consumed < until):
            deadline.check()
            msgs = consumer.consume(p.batch_max_size, wait_s)
            if not msgs:
                continue
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    msg_text = f"baseline consumer error: {err}"
                    raise BenchError(msg_text)
                stats.consumed += 1
                headers: Headers = [(IN_TS_HEADER, str(msg.timestamp()[1]).encode())]
                while True:
                    try:
                        produce(out_topic, msg.value(), msg.key(), headers=headers, on_delivery=on_delivery)
                        break
                    except BufferError:
                        poll(0.05)
            left = producer.flush(30)
            if errors or left:
                msg_text = f"baseline: {len(errors)} delivery errors ({errors[:3]}), {left} unacknowledged"
                raise BenchError(msg_text)
            stats.produced = stats.consumed
            stats.batches += 1
            stats.largest = max(stats.largest, len(msgs))
    finally:
        producer.flush(30)
        consumer.close()
    return stats


# -- throughput -----------------------------------------------------------------------------------


def throughput_headwater(p: Params, events_topic: str) -> dict[str, Any]:
    topics = HeadwaterTopics.fresh("tp", events=events_topic)
    create_topics(p, topics.all())
    settings = headwater_settings(p, topics, tail=False)
    check_settings(settings, topics)
    stop = threading.Event()
    cpu0, wall0 = cpu_seconds(), time.time()
    t0 = time.perf_counter()
    run_daemon(settings, stop, create_topics=False)
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    outputs = read_topic(p.bootstrap, topics.predictions, p.partitions, p.n_events, Deadline(p.timeout_s, "read"))
    ids = {m.key() for m in outputs}
    out_ts = [m.timestamp()[1] for m in outputs]
    result = {
        "seconds": round(seconds, 3),
        "events_per_s": round(p.n_events / seconds, 1),
        "outputs": len(outputs),
        "unique_outputs": len(ids),
        "dead_letters": topic_size(p.bootstrap, topics.dead_letters, p.partitions),
        "model_events": topic_size(p.bootstrap, topics.model_events, p.partitions),
        "first_output_after_s": round(min(out_ts) / 1000 - wall0, 3),
        "output_span_s": round((max(out_ts) - min(out_ts)) / 1000, 3),
        "first_to_last_output_events_per_s": steady_rate(p.n_events, out_ts),
        "process_cpu_s": round(cpu, 2),
    }
    if len(ids) != p.n_events or len(outputs) != p.n_events:
        msg = f"headwater throughput: {len(outputs)} outputs ({len(ids)} distinct) for {p.n_events} events"
        raise BenchError(msg)
    return result


def throughput_baseline(p: Params, events_topic: str) -> dict[str, Any]:
    out_topic = f"bench.base.tp.out.{uuid.uuid4().hex[:10]}"
    create_topics(p, [out_topic])
    cpu0, wall0 = cpu_seconds(), time.time()
    t0 = time.perf_counter()
    stats = baseline_loop(
        p,
        events_topic,
        out_topic,
        threading.Event(),
        Deadline(p.timeout_s, "baseline throughput"),
        p.n_events,
    )
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    outputs = read_topic(p.bootstrap, out_topic, p.partitions, p.n_events, Deadline(p.timeout_s, "read"))
    ids = {m.key() for m in outputs}
    out_ts = [m.timestamp()[1] for m in outputs]
    result = {
        "seconds": round(seconds, 3),
        "events_per_s": round(p.n_events / seconds, 1),
        "outputs": len(outputs),
        "unique_outputs": len(ids),
        "batches": stats.batches,
        "first_output_after_s": round(min(out_ts) / 1000 - wall0, 3),
        "output_span_s": round((max(out_ts) - min(out_ts)) / 1000, 3),
        "first_to_last_output_events_per_s": steady_rate(p.n_events, out_ts),
        "process_cpu_s": round(cpu, 2),
    }
    if len(ids) != p.n_events or len(outputs) != p.n_events or stats.consumed != p.n_events:
        msg = f"baseline throughput: consumed {stats.consumed}, {len(outputs)} outputs for {p.n_events} events"
        raise BenchError(msg)
    return result


# -- latency --------------------------------------------------------------------------------------


def latency_phase(
    p: Params,
    name: str,
    events: list[Payload],
    events_topic: str,
    out_topic: str,
    start_system: Callable[[threading.Event, Deadline], Runner],
    input_ts: Callable[[Received], tuple[str, int | None]],
) -> dict[str, Any]:
    """Send ``events`` at ``p.rate`` while the system runs; latency = receive time - input timestamp."""
    run = measure_latency(p, name, events, events_topic, out_topic, start_system)
    return summarize_latency(run, input_ts)


def latency_headwater(p: Params, events: list[Payload]) -> dict[str, Any]:
    topics = HeadwaterTopics.fresh("lat")
    create_topics(p, topics.all())
    settings = headwater_settings(p, topics, tail=True)
    check_settings(settings, topics)

    def start(stop: threading.Event, deadline: Deadline) -> Runner:
        runner = Runner("bench-headwater", lambda: run_daemon(settings, stop, create_topics=False))
        runner.start()
        return runner

    def input_ts(item: Received) -> tuple[str, int | None]:
        body = orjson.loads(item[3] or b"{}")
        return str(body.get("id")), body.get("event_ts_ms")

    result = latency_phase(p, "headwater", events, topics.events, topics.predictions, start, input_ts)
    result["dead_letters"] = topic_size(p.bootstrap, topics.dead_letters, p.partitions)
    result["micro_batches"] = headwater_batches(p, topics.predictions)
    return result


def latency_baseline(p: Params, events: list[Payload]) -> dict[str, Any]:
    uid = uuid.uuid4().hex[:10]
    in_topic, out_topic = f"bench.base.lat.events.{uid}", f"bench.base.lat.out.{uid}"
    create_topics(p, [in_topic, out_topic])

    stats = BaselineStats()

    def start(stop: threading.Event, deadline: Deadline) -> Runner:
        runner = Runner("bench-baseline", lambda: baseline_loop(p, in_topic, out_topic, stop, deadline, stats=stats))
        runner.start()
        return runner

    def input_ts(item: Received) -> tuple[str, int | None]:
        key, headers = item[2], item[4]
        pairs = list(headers.items()) if isinstance(headers, dict) else headers or []
        ts = next((int(v) for k, v in pairs if k == IN_TS_HEADER and v is not None), None)
        return (key or b"").decode(), ts

    result = latency_phase(p, "baseline", events, in_topic, out_topic, start, input_ts)
    result["micro_batches"] = {
        "count": stats.batches,
        "mean_size": round(stats.consumed / stats.batches, 1) if stats.batches else None,
        "max_size": stats.largest,
    }
    return result


def headwater_batches(p: Params, predictions_topic: str) -> dict[str, Any]:
    """Sizes of Headwater's served micro-batches (predictions of one batch share ``predicted_ts_ms``),
    warm-up included."""
    n = topic_size(p.bootstrap, predictions_topic, p.partitions)
    msgs = read_topic(p.bootstrap, predictions_topic, p.partitions, n, Deadline(p.timeout_s, "predictions"))
    per_batch: dict[int, int] = {}
    for m in msgs:
        ts = int(orjson.loads(m.value() or b"{}")["predicted_ts_ms"])
        per_batch[ts] = per_batch.get(ts, 0) + 1
    sizes = list(per_batch.values())
    return {
        "count": len(sizes),
        "mean_size": round(sum(sizes) / len(sizes), 1) if sizes else None,
        "max_size": max(sizes, default=0),
    }


# -- report ---------------------------------------------------------------------------------------


@dataclass
class Report:
    params: dict[str, Any]
    machine: dict[str, Any]
    throughput: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)
    total_s: float = 0.0


def fill_ratios(report: Report) -> None:
    tp, lat = report.throughput, report.latency
    report.ratios = {
        "events_per_s": ratio(tp["headwater"]["events_per_s"], tp["baseline"]["events_per_s"]),
        "p50_latency": ratio(lat["headwater"].get("p50_ms"), lat["baseline"].get("p50_ms")),
        "p99_latency": ratio(lat["headwater"].get("p99_ms"), lat["baseline"].get("p99_ms")),
    }


def table(report: Report) -> list[list[str]]:
    tp, lat, r = report.throughput, report.latency, report.ratios

    def fmt(v: float | None, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    rows = [["metric", "headwater", "baseline", "headwater / baseline"]]
    rows.append(
        [
            "throughput (events/s)",
            fmt(tp["headwater"]["events_per_s"], ",.0f"),
            fmt(tp["baseline"]["events_per_s"], ",.0f"),
            fmt(r["events_per_s"], ".3f"),
        ]
    )
    rows.append(
        [
            "throughput, first to last output (events/s)",
            fmt(tp["headwater"]["first_to_last_output_events_per_s"], ",.0f"),
            fmt(tp["baseline"]["first_to_last_output_events_per_s"], ",.0f"),
            fmt(
                ratio(
                    tp["headwater"]["first_to_last_output_events_per_s"],
                    tp["baseline"]["first_to_last_output_events_per_s"],
                ),
                ".3f",
            ),
        ]
    )
    rows.append(
        [
            "throughput wall time (s)",
            fmt(tp["headwater"]["seconds"], ".2f"),
            fmt(tp["baseline"]["seconds"], ".2f"),
            "",
        ]
    )
    for q, key in (("p50", "p50_latency"), ("p99", "p99_latency")):
        rows.append(
            [
                f"latency {q} (ms)",
                fmt(lat["headwater"].get(f"{q}_ms"), ".1f"),
                fmt(lat["baseline"].get(f"{q}_ms"), ".1f"),
                fmt(r[key], ".3f"),
            ]
        )
    rows.append(
        [
            "latency max (ms)",
            fmt(lat["headwater"].get("max_ms"), ".1f"),
            fmt(lat["baseline"].get("max_ms"), ".1f"),
            "",
        ]
    )
    return rows


def render_markdown(report: Report, rows: list[list[str]]) -> str:
    p, m = report.params, report.machine
    tp, lat = report.throughput, report.latency
    md = ["# End-to-end through Kafka: Headwater vs a plain confluent-kafka loop", ""]
    md.append(
        f"Measured on {m['cpu_count']} CPU(s) ({m['cpu_model']}), Python {m['python']}, Apache Kafka "
        f"{m['kafka_version']} (single local broker, KRaft), confluent-kafka {m['confluent_kafka']} / "
        f"librdkafka {m['librdkafka']}, Bytewax {m['bytewax']}; headwater commit {m['headwater_commit']}. "
        f"Produced by `python -m bench.e2e_kafka` in {report.total_s:.0f} s; load average (1/5/15 min) "
        f"{' / '.join(map(str, m['load_average_at_start']))} at the start."
    )
    md.append("")
    md.append("| " + " | ".join(rows[0]) + " |")
    md.append("|" + "|".join([":---"] + ["---:"] * (len(rows[0]) - 1)) + "|")
    md.extend("| " + " | ".join(row) + " |" for row in rows[1:])
    md.append("")
    md.append("## What was measured")
    md.append("")
    md.append(
        f"- **Throughput**: {p['n_events']:,} events pre-loaded on a fresh {p['partitions']}-partition "
        f"topic; each system reads all of it from the beginning and writes one output per event. Headwater: "
        f"wall time of `run_daemon` with `runtime.tail: false` (start-up, consumer/producer creation and "
        f"the final acknowledged flush included; imports done beforehand), learner `{p['learner']}`, "
        f"{p['workers']} worker(s). Baseline: wall time of the consume/produce loop until {p['n_events']:,} "
        f"messages are consumed, produced and acknowledged. Both read the *same* events topic. Every output "
        f"was read back and counted (headwater: {tp['headwater']['unique_outputs']:,} predictions, "
        f"{tp['headwater']['dead_letters']} dead letters; baseline: {tp['baseline']['unique_outputs']:,})."
    )
    md.append(
        f"- **Latency**: a producer thread sends {p['n_latency_events']:,} events at {p['rate']:,.0f}/s "
        f"({p['duration_s']:g} s) to a fresh events topic while the system runs in a thread (Headwater with "
        f"`runtime.tail: true`); a reader thread consumes the output topic. Latency = reader receive time - "
        f"the input message's Kafka timestamp (set by the input producer at `produce()`, linger.ms=1): "
        f"Headwater's `event_ts_ms`, the baseline's `{IN_TS_HEADER}` header. About {p['warmup_s']:g} s of "
        f"warm-up events (other ids) go first and are not counted. Achieved send rate: headwater "
        f"{lat['headwater']['achieved_send_rate']:,.0f}/s, "
        f"baseline {lat['baseline']['achieved_send_rate']:,.0f}/s. Once every output was in, the stop "
        f"event was set and the system's thread joined."
    )
    md.append(
        f"- **Baseline**: `Consumer.consume({p['batch_max_size']}, {p['batch_max_wait_ms'] / 1000:g})` over "
        f"assigned partitions (no group rebalance, like Bytewax's source), `Producer.produce` of each "
        f"message "
        f"(key and value unchanged, input timestamp in a header) with Headwater's sink settings "
        f"(enable.idempotence, acks=all, linger.ms=2, compression lz4), `flush()` per consumed batch. "
        f"Headwater uses the same micro-batch knobs (max_size {p['batch_max_size']}, "
        f"max_wait_ms {p['batch_max_wait_ms']:g}) and, on top, decodes and validates each event, predicts, "
        f"learns from the inline labels (half the events), and writes a model event per micro-batch."
    )
    md.append(
        "- Everything runs in one Python process on the same machine as the broker, one system at a time; "
        "the producer and reader threads share the process (and the GIL) with the system under test, for "
        "both systems alike. Process CPU seconds (all threads) are in the JSON. Numbers from one run, not "
        "averaged."
    )
    md.append("")
    md.extend(observations(report))
    return "\n".join(md)


def observations(report: Report) -> list[str]:
    p, tp, lat = report.params, report.throughput, report.latency
    hw, base = lat["headwater"], lat["baseline"]
    hw_stage, base_stage = hw["input_to_output_produced"], base["input_to_output_produced"]
    hw_del, base_del = hw["output_produced_to_received"], base["output_produced_to_received"]
    window = p["rate"] * p["batch_max_wait_ms"] / 1000
    out = ["## Observations", ""]
    out.append(
        f"- Where the latency goes (p50 / p99, ms): input produced → output produced: headwater "
        f"{hw_stage['p50_ms']:.0f} / {hw_stage['p99_ms']:.0f}, baseline {base_stage['p50_ms']:.0f} / "
        f"{base_stage['p99_ms']:.0f}; output produced → received: headwater {hw_del['p50_ms']:.0f} / "
        f"{hw_del['p99_ms']:.0f}, baseline {base_del['p50_ms']:.0f} / {base_del['p99_ms']:.0f}."
    )
    hw_mb, base_mb = hw["micro_batches"], base["micro_batches"]
    line = (
        f"- Micro-batches in the latency phase: headwater {hw_mb['count']} batches of {hw_mb['mean_size']} "
        f"events on average (largest {hw_mb['max_size']}); baseline {base_mb['count']} of "
        f"{base_mb['mean_size']} (largest {base_mb['max_size']}). At {p['rate']:,.0f} events/s a "
        f"{p['batch_max_wait_ms']:g} ms window holds about {window:.0f} events."
    )
    if hw_mb["mean_size"] is not None and hw_mb["mean_size"] > 2 * max(window, 1):
        line += (
            " Headwater's batches are far larger than the window: `batching.max_wait_ms` is not bounding "
            "the wait (see `dataflows/batching.py`), and an event waits about half a batch's fill time."
        )
    out.append(line)
    out.append(
        f"- Throughput wall time includes start-up: the first output came "
        f"{tp['headwater']['first_output_after_s']:.2f} s (headwater) and "
        f"{tp['baseline']['first_output_after_s']:.2f} s (baseline) after the start; first to last output "
        f"took {tp['headwater']['output_span_s']:.2f} s and {tp['baseline']['output_span_s']:.2f} s."
    )
    out.append(
        f"- p99 and max rest on the slowest 1% ({hw['outputs'] // 100} events) of one "
        f"{p['duration_s']:g} s window: a single stall of the broker's acknowledgements on these shared "
        f"cores moves them, so they vary between runs far more than p50 does (the per-stage split above "
        f"shows which side a stall hit)."
    )
    out.append(
        f"- Stopping: after the stop event was set, headwater's `run_daemon` returned in "
        f"{hw['stopped_after_stop_s']} s, the baseline loop in {base['stopped_after_stop_s']} s "
        f"(bound: {p['timeout_s']:g} s)."
    )
    out.append("")
    return out


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    p = parse_args(argv)
    started = time.perf_counter()
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(p).items()}
    params["n_latency_events"] = p.n_latency_events
    report = Report(params=params, machine=machine_info(p))

    log.info("generating %d events", max(p.n_events, p.n_latency_events))
    events = make_events(max(p.n_events, p.n_latency_events))

    try:
        events_topic = f"bench.tp.events.{uuid.uuid4().hex[:10]}"
        create_topics(p, [events_topic])
        log.info("pre-loading %d events on %s", p.n_events, events_topic)
        producer = make_producer(p.bootstrap)
        produce_all(producer, ((events_topic, k, v) for k, v in events[: p.n_events]))
        log.info("throughput: headwater")
        report.throughput["headwater"] = throughput_headwater(p, events_topic)
        log.info("throughput: baseline")
        report.throughput["baseline"] = throughput_baseline(p, events_topic)

        measured = events[: p.n_latency_events]
        log.info("latency: headwater (%d events at %.0f/s)", len(measured), p.rate)
        report.latency["headwater"] = latency_headwater(p, measured)
        log.info("latency: baseline (%d events at %.0f/s)", len(measured), p.rate)
        report.latency["baseline"] = latency_baseline(p, measured)
    finally:
        if not p.keep_topics:
            log.info("deleting the %d topics of this run", len(CREATED))
            delete_topics(p.bootstrap, CREATED)

    fill_ratios(report)
    report.machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report.total_s = round(time.perf_counter() - started, 1)
    rows = table(report)
    print(render_text(rows))
    p.out_dir.mkdir(parents=True, exist_ok=True)
    (p.out_dir / "e2e_kafka.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    (p.out_dir / "e2e_kafka.md").write_text(render_markdown(report, rows))
    print(f"\nwrote {p.out_dir / 'e2e_kafka.json'} and {p.out_dir / 'e2e_kafka.md'}")
    if not all(report.latency[s]["stopped_within_bound"] for s in ("headwater", "baseline")):
        print("a system did not stop within the bound after its stop event was set", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
