"""What the Prometheus metrics cost the serve path: the ``serve__batch`` step (decode, predict,
encode a micro-batch) with `daemon.metrics.PrometheusMetrics` against `NullMetrics`, in the same
run, on the same messages.

The serve step is where the metrics could cost: it handles every event. Each micro-batch is
served as the flow serves it, and with each one the calls the Kafka edges make are made too (the
source's ``consumed`` per poll, the sink's ``flushed`` per flush), so the Prometheus run pays for
everything a micro-batch reports. The messages are confluent-kafka `Message` objects, as the source
hands them on: ``--events`` events of two features with their own ``ts_ms``, 1 in 200 of them
malformed (dead letters by reason), in micro-batches of ``--batch-size``; the champion is a trained
river-logreg and, with ``--canary``, a second one serves 10 % of the keys. Both ways run
``--rounds`` times, interleaved, after a warm-up; events/s is the median over rounds.

Serving computes each prediction's latency for the port whatever implements it, so that part is
in both ways; it is timed on its own too (``latency_us_per_batch``). Then, unless
``--kafka-events 0``, the whole flow through the local broker (`bench.metrics_kafka`), where a
difference this small is within what two runs of the same code differ by, which it shows::

    python3 -m daemon.kafka_local up                  # the broker on 127.0.0.1:9092
    .venv/bin/python -m bench.metrics_overhead        # ~4 min; writes bench/results/metrics_overhead.{json,md}
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from typing import Any

import msgspec
import numpy as np
from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from bench.metrics_kafka import Knobs, measure_kafka
from bench.report import add_out_dir, git_commit, new_parser, write_results
from daemon.metrics import PrometheusMetrics
from dataflows.config import Topics
from dataflows.decode import Decoder, FeatureSchema
from dataflows.ports import Metrics, NullMetrics
from dataflows.serve import Served, Server, ServingBoard, ServingTable, _floats, _latencies
from learners import Learner, LearnerSpec, build_learner

GROUP = "default"
TOPICS = Topics("events", "predictions", "dead-letters", "model-events", "labels")
SCHEMA = FeatureSchema(["a", "b"], [0, 1])


def _learner(seed: int) -> Learner:
    learner = build_learner(LearnerSpec("river-logreg"), n_features=2, n_classes=2, feature_names=["a", "b"])
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, 2))
    learner.learn(x, (x.sum(axis=1) > 0).astype(np.int64))
    return learner


def _messages(n: int, seed: int = 0) -> list[Message]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).round(4).tolist()
    now_ms = int(time.time() * 1000)
    out = []
    for i in range(n):
        body = b"{not json" if i % 200 == 199 else msgspec.json.encode({"id": f"e{i}", "features": x[i],
                                                                        "ts_ms": now_ms - 5})  # fmt: skip
        out.append(Message(topic="events", partition=0, offset=i, key=f"e{i}".encode(), value=body,
                           timestamp=(1, now_ms)))  # fmt: skip
    return out


def _server(metrics: Metrics, canary: bool) -> Server:
    board = ServingBoard()
    table = ServingTable(GROUP, Served(f"{GROUP}/1", _learner(1)))
    if canary:
        table = ServingTable(GROUP, table.champion, Served(f"{GROUP}/2", _learner(2)), 0.1)
    board.publish(table)
    return Server(GROUP, Decoder(SCHEMA, "events", "labels"), board, [0, 1], TOPICS, time.time, metrics)


def _serve(server: Server, batches: list[list[Message]]) -> float:
    metrics = server.metrics
    started = time.thread_time()
    for batch in batches:
        metrics.consumed("events", len(batch))  # the source, once per poll
        server(batch)  # type: ignore[arg-type]  # Message is what the flow hands on
        metrics.flushed(0.001)  # the sink, once per flush
    return time.thread_time() - started


def _calls_us(metrics: Metrics, batch_size: int, repeat: int = 20_000) -> float:
    """The calls one micro-batch makes, alone: what the metrics cost a batch, without the noise
    of serving it."""
    latencies = np.random.default_rng(0).uniform(0.001, 0.02, batch_size)
    started = time.thread_time()
    for i in range(repeat):
        metrics.consumed("events", batch_size)
        metrics.served(GROUP, "champion", batch_size, 0.01)
        metrics.prediction_latencies(GROUP, "champion", latencies)
        if i % 2:  # one batch in two held a malformed record (1 in 200 events, 512 a batch)
            metrics.dead_lettered("bad_json", 1)
        metrics.batch_served(GROUP, batch_size, 0.003)
        metrics.flushed(0.001)
    return 1e6 * (time.thread_time() - started) / repeat


def _latency_us(batches: list[list[Message]], canary: bool) -> float:
    """The per-prediction latency arrays alone, per micro-batch, as serving makes them (reading
    each event's time, which serving does in a loop it runs anyway, is included here)."""
    server = _server(NullMetrics(), canary)
    records = [server.decoder.decode_many(batch)[0] for batch in batches[:50]]
    started = time.thread_time()
    for events in records:
        rows = np.arange(len(events))
        _latencies({"champion": [rows]}, _floats([e.source.ts_ms for e in events]), int(time.time() * 1000))
    return 1e6 * (time.thread_time() - started) / len(records)


def measure(events: int, batch_size: int, rounds: int, canary: bool) -> dict[str, Any]:
    msgs = _messages(events)
    batches = [msgs[i : i + batch_size] for i in range(0, len(msgs), batch_size)]
    chunks = [batches[i : i + 10] for i in range(0, len(batches), 10)]
    ways: dict[str, Server] = {
        "null": _server(NullMetrics(), canary),
        "prometheus": _server(PrometheusMetrics(CollectorRegistry()), canary),
    }
    for server in ways.values():  # warm-up: children made, caches warm
        _serve(server, batches[:20])
    # The 200,000 messages held for the run are not what is measured: out of the collector's way,
    # or a full collection walking them lands on whichever way happens to run then.
    gc.collect()
    gc.freeze()
    # Interleaved finely (10 micro-batches of one way, then of the other, the order swapped each
    # time), so that both see the same machine: a slow second elsewhere hits both alike.
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(rounds):
        spent = dict.fromkeys(ways, 0.0)
        for i, chunk in enumerate(chunks):
            for way in list(ways)[:: 1 if i % 2 else -1]:
                spent[way] += _serve(ways[way], chunk)
        for way, s in spent.items():
            seconds[way].append(s)
    gc.unfreeze()
    rate = {way: events / statistics.median(s) for way, s in seconds.items()}
    serve_us = 1e6 * statistics.median(seconds["null"]) / len(batches)
    alone: dict[str, Metrics] = {"null": NullMetrics(), "prometheus": PrometheusMetrics(CollectorRegistry())}
    calls_us = {way: statistics.median(_calls_us(m, batch_size) for _ in range(5)) for way, m in alone.items()}
    return {
        "events": events, "batch_size": batch_size, "canary": canary, "rounds": rounds,
        "null_events_per_s": round(rate["null"]), "prometheus_events_per_s": round(rate["prometheus"]),
        "overhead_pct": round(100 * (rate["null"] / rate["prometheus"] - 1), 2),
        "overhead_pct_per_round": [round(100 * (p / n - 1), 2) for n, p in zip(seconds["null"], seconds["prometheus"],
                                                                                strict=True)],
        "serve_us_per_batch_null": round(serve_us, 1),
        "calls_us_per_batch": {way: round(us, 2) for way, us in calls_us.items()},
        "calls_pct_of_serve": round(100 * (calls_us["prometheus"] - calls_us["null"]) / serve_us, 2),
        "latency_us_per_batch": round(_latency_us(batches, canary), 1),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("bench.metrics_overhead", __doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events served per round and way")
    parser.add_argument("--batch-size", type=int, default=512, help="events per micro-batch (batching.max_size)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per way")
    parser.add_argument("--kafka-events", type=int, default=200_000, help="events per run through the broker (0: skip)")
    parser.add_argument("--kafka-rounds", type=int, default=6, help="runs per way through the broker")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    add_out_dir(parser)
    a = parser.parse_args(argv)
    started = time.perf_counter()
    results = [measure(a.events, a.batch_size, a.rounds, canary) for canary in (False, True)]
    kafka = measure_kafka(Knobs(a.bootstrap, 4), a.kafka_events, a.kafka_rounds) if a.kafka_events > 0 else None
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "commit": git_commit(),
               "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    report = {"params": vars(a) | {"out_dir": str(a.out_dir)}, "machine": machine, "results": results,
              "kafka": kafka, "total_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    write_results(a.out_dir, "metrics_overhead", report, render(report))
    print(render(report))
    return 0


def render(report: dict[str, Any]) -> str:
    m, p = report["machine"], report["params"]
    lines = [
        "# What the Prometheus metrics cost the serve step",
        "",
        f"Python {m['python']}, {m['cpus']} CPU(s), headwater commit {m['commit']}, load average "
        f"{m['load_average_at_start'][0]} at the start. Produced by `python -m bench.metrics_overhead` in "
        f"{report['total_s']:.0f} s: {p['events']:,} events per round in micro-batches of {p['batch_size']}, "
        f"{p['rounds']} rounds, the two ways interleaved every 10 micro-batches; median over rounds.",
        "",
        "| routes | NullMetrics events/s | PrometheusMetrics events/s | overhead | per round | serve µs/batch "
        "| calls µs/batch (Null, Prometheus) | calls / serve | latency arrays µs/batch |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        routes = "champion + canary (10 %)" if r["canary"] else "champion"
        rounds = ", ".join(f"{x:+.1f}" for x in r["overhead_pct_per_round"])
        calls = r["calls_us_per_batch"]
        lines.append(
            f"| {routes} | {r['null_events_per_s']:,} | {r['prometheus_events_per_s']:,} | {r['overhead_pct']:+.2f} % "
            f"| {rounds} | {r['serve_us_per_batch_null']} | {calls['null']}, {calls['prometheus']} "
            f"| {r['calls_pct_of_serve']:.2f} % | {r['latency_us_per_batch']} |"
        )
    lines += [
        "",
        "**overhead**: how much longer the same micro-batches took with `PrometheusMetrics` than with "
        "`NullMetrics`, whole serve step, in % (per round: each round's own; negative: the noise of the machine "
        "is larger than the difference). **calls µs/batch**: the calls one micro-batch makes (`consumed`, `served`, "
        "`prediction_latencies` of a 512-value array, one `dead_lettered` every other batch, `batch_served`, "
        "`flushed`) timed alone, 20,000 times, median of 5; **calls / serve** is the Prometheus calls' extra "
        "time over the serve step's time per batch: the metrics' cost without the noise of serving. "
        "**latency arrays**: each prediction's event-to-prediction time, which serving computes for any "
        "`Metrics` (so it is in both ways), timed alone.",
    ]
    k = report.get("kafka")
    if k is not None:
        lines += [
            "",
            f"## Through the broker: {k['events']:,} events drained, {k['rounds']} runs per way",
            "",
            "The whole flow (`bench/metrics_kafka.py`): Kafka source, serve, sink, train step, one worker, "
            f"{k['partitions']} partitions, the local broker on the same machine; `NullMetrics` run twice to show "
            "how far two runs of the same code differ here. Median over runs, start-up included.",
            "",
            "| way | events/s | vs null | process CPU s | vs null | runs (s) |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for way in ("null", "null_again", "prometheus"):
            runs = ", ".join(f"{r['seconds']:.2f}" for r in k["runs"][way])
            lines.append(
                f"| {way} | {k['events_per_s'][way]:,} | {k['wall_pct_vs_null'][way]:+.1f} % | {k['cpu_s'][way]} "
                f"| {k['cpu_pct_vs_null'][way]:+.1f} % | {runs} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
