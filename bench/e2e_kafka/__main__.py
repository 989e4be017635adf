"""``python -m bench.e2e_kafka``: the command line, and the run in order: pre-load the events,
throughput of Headwater then of the baseline, latency of each, then the table, the JSON and the
Markdown (`bench.e2e_kafka` says what each phase measures)."""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from dataclasses import asdict

from bench.broker import CREATED, create_topics, delete_topics, make_events
from bench.e2e_kafka.render import Report, fill_ratios, render_markdown, table
from bench.e2e_kafka.systems import (
    Params,
    latency_baseline,
    latency_headwater,
    throughput_baseline,
    throughput_headwater,
)
from bench.report import (
    add_kafka_args,
    add_out_dir,
    machine_info,
    new_parser,
    params_of,
    render_text,
    require_positive,
    start_logging,
    write_results,
)
from daemon.kafka_client import make_producer, produce_all

log = logging.getLogger("bench.e2e_kafka")


def parse_args(argv: list[str] | None = None) -> Params:
    parser = new_parser(
        "bench.e2e_kafka", "Headwater vs a plain confluent-kafka consume/produce loop, through the real broker."
    )
    add = parser.add_argument
    add_kafka_args(parser)
    add("-n", "--n-events", type=int, default=50_000, help="events in the throughput phase")
    add("--rate", type=float, default=2000.0, help="events/s sent in the latency phase")
    add("--duration", type=float, default=10.0, help="seconds of sending in the latency phase")
    add("--learner", default="river-logreg", help="Headwater learner (built-in or module:factory)")
    add("--workers", type=int, default=1, help="Bytewax worker threads for Headwater")
    add("--partitions", type=int, default=4, help="partitions of every fresh topic")
    add("--batch-size", type=int, default=512, help="micro-batch size (both systems)")
    add("--max-wait-ms", type=float, default=5.0, help="micro-batch wait (both systems)")
    add("--warmup", type=float, default=1.0, help="seconds of warm-up sending before latency")
    add("--timeout", type=float, default=120.0, help="bound on every wait of a phase, seconds")
    add(
        "--portfolio",
        action="store_true",
        help="Headwater's default candidates (the default portfolio); without: the champion and its fork",
    )
    add_out_dir(parser)
    a = parser.parse_args(argv)
    positive = ("n_events", "rate", "duration", "workers", "partitions", "batch_size", "max_wait_ms", "timeout")
    require_positive(parser, a, *positive)
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
        portfolio=a.portfolio,
    )


def main(argv: list[str] | None = None) -> int:
    start_logging(log)
    p = parse_args(argv)
    started = time.perf_counter()
    params = params_of(p) | {"n_latency_events": p.n_latency_events}
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
    write_results(p.out_dir, "e2e_kafka", asdict(report), render_markdown(report, rows))
    if not all(report.latency[s]["stopped_within_bound"] for s in ("headwater", "baseline")):
        print("a system did not stop within the bound after its stop event was set", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
