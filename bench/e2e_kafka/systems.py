"""The two systems of `bench.e2e_kafka` and how each is measured: Headwater's whole flow
(`run_daemon`) and the least a Kafka-in/Kafka-out service can do (`baseline_loop`), each drained
from a pre-loaded topic (throughput) and fed at a fixed rate (latency, `bench.latency`).
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from bench.broker import (
    ADMIN,
    BenchError,
    Deadline,
    Headers,
    HeadwaterTopics,
    Payload,
    Received,
    check_settings,
    cpu_seconds,
    create_topics,
    kafka_section,
    new_consumer,
    partitions_of,
    read_records,
    read_topic,
    topic_size,
)
from bench.latency import (
    Runner,
    batch_summary,
    headwater_in_thread,
    in_thread,
    measure_latency,
    prediction_ts,
    summarize_latency,
)
from daemon.config import Settings, load_settings
from daemon.runner import run_daemon
from daemon.workload import FEATURES

IN_TS_HEADER = "in_ts_ms"


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
    portfolio: bool = False  # the default candidates (the default portfolio); else the champion and its fork

    @property
    def n_latency_events(self) -> int:
        return round(self.rate * self.duration_s)


def headwater_settings(p: Params, topics: HeadwaterTopics, *, tail: bool) -> Settings:
    return load_settings(
        None,
        kafka=kafka_section(p, topics),
        admin=ADMIN,
        schema={"features": list(FEATURES), "classes": [0, 1]},
        runtime={"tail": tail, "workers": p.workers},
        batching={"max_size": p.batch_max_size, "max_wait_ms": p.batch_max_wait_ms},
        # the champion and its fork: what the history (bench/results/HISTORY.md) was measured with
        # before the default portfolio (``--portfolio``: the defaults)
        model={"learner": p.learner} if p.portfolio else {"learner": p.learner, "candidates": [{"name": "fork"}]},
        # a fresh registry per run: a run must not start from an earlier run's champion
        registry={"path": tempfile.mkdtemp(prefix="headwater-bench-registry-")},
    )


# -- the baseline ---------------------------------------------------------------------------------


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


def steady_rate(n: int, out_ts_ms: list[int]) -> float | None:
    """Events/s between the first and the last output (start-up excluded)."""
    span_s = (max(out_ts_ms) - min(out_ts_ms)) / 1000 if out_ts_ms else 0.0
    return round((n - 1) / span_s, 1) if span_s > 0 else None


def drain(p: Params, run: Callable[[], object], out_topic: str, extra: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Time ``run`` (a system draining the pre-loaded events), then read back and count its outputs;
    ``extra()``: what else this system's result says."""
    cpu0, wall0 = cpu_seconds(), time.time()
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    outputs = read_topic(p.bootstrap, out_topic, p.partitions, p.n_events, Deadline(p.timeout_s, "read"))
    out_ts = [m.timestamp()[1] for m in outputs]
    return {
        "seconds": round(seconds, 3),
        "events_per_s": round(p.n_events / seconds, 1),
        "outputs": len(outputs),
        "unique_outputs": len({m.key() for m in outputs}),
        **extra(),
        "first_output_after_s": round(min(out_ts) / 1000 - wall0, 3),
        "output_span_s": round((max(out_ts) - min(out_ts)) / 1000, 3),
        "first_to_last_output_events_per_s": steady_rate(p.n_events, out_ts),
        "process_cpu_s": round(cpu, 2),
    }


def throughput_headwater(p: Params, events_topic: str) -> dict[str, Any]:
    topics = HeadwaterTopics.fresh("tp", events=events_topic)
    create_topics(p, topics.all(), topics.daemon_made)
    settings = headwater_settings(p, topics, tail=False)
    check_settings(settings, topics)

    def sizes() -> dict[str, Any]:
        return {
            "dead_letters": topic_size(p.bootstrap, topics.dead_letters, p.partitions),
            "model_events": topic_size(p.bootstrap, topics.model_events, p.partitions),
        }

    result = drain(p, lambda: run_daemon(settings, threading.Event(), create_topics=False), topics.predictions, sizes)
    if result["unique_outputs"] != p.n_events or result["outputs"] != p.n_events:
        msg = (
            f"headwater throughput: {result['outputs']} outputs ({result['unique_outputs']} distinct) "
            f"for {p.n_events} events"
        )
        raise BenchError(msg)
    return result


def throughput_baseline(p: Params, events_topic: str) -> dict[str, Any]:
    out_topic = f"bench.base.tp.out.{uuid.uuid4().hex[:10]}"
    create_topics(p, [out_topic])
    stats = BaselineStats()
    deadline = Deadline(p.timeout_s, "baseline throughput")

    def loop() -> None:
        baseline_loop(p, events_topic, out_topic, threading.Event(), deadline, p.n_events, stats)

    result = drain(p, loop, out_topic, lambda: {"batches": stats.batches})
    if result["unique_outputs"] != p.n_events or result["outputs"] != p.n_events or stats.consumed != p.n_events:
        msg = f"baseline throughput: consumed {stats.consumed}, {result['outputs']} outputs for {p.n_events} events"
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
    create_topics(p, topics.all(), topics.daemon_made)
    settings = headwater_settings(p, topics, tail=True)
    check_settings(settings, topics)
    start = headwater_in_thread(settings)
    result = latency_phase(p, "headwater", events, topics.events, topics.predictions, start, prediction_ts)
    result["dead_letters"] = topic_size(p.bootstrap, topics.dead_letters, p.partitions)
    result["micro_batches"] = headwater_batches(p, topics.predictions)
    return result


def latency_baseline(p: Params, events: list[Payload]) -> dict[str, Any]:
    uid = uuid.uuid4().hex[:10]
    in_topic, out_topic = f"bench.base.lat.events.{uid}", f"bench.base.lat.out.{uid}"
    create_topics(p, [in_topic, out_topic])

    stats = BaselineStats()

    def start(stop: threading.Event, deadline: Deadline) -> Runner:
        return in_thread("bench-baseline", lambda: baseline_loop(p, in_topic, out_topic, stop, deadline, stats=stats))

    def input_ts(item: Received) -> tuple[str, int | None]:
        key, headers = item[2], item[4]
        pairs = list(headers.items()) if isinstance(headers, dict) else headers or []
        ts = next((int(v) for k, v in pairs if k == IN_TS_HEADER and v is not None), None)
        return (key or b"").decode(), ts

    result = latency_phase(p, "baseline", events, in_topic, out_topic, start, input_ts)
    result["micro_batches"] = batch_summary(stats.batches, stats.consumed, stats.largest)
    return result


def headwater_batches(p: Params, predictions_topic: str) -> dict[str, Any]:
    """Sizes of Headwater's served micro-batches (predictions of one batch share ``predicted_ts_ms``),
    warm-up included."""
    predictions = read_records(p, predictions_topic, Deadline(p.timeout_s, "predictions"))
    sizes = list(Counter(int(body["predicted_ts_ms"]) for body in predictions).values())
    return batch_summary(len(sizes), sum(sizes), max(sizes, default=0))
