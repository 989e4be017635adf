"""``python -m bench.scaling``: the command line, then the runs in order: pre-load the events, the
plain loop at each batch size swept (throughput, then latency), each configuration (throughput, then
latency; the base first), then the tables, the JSON, the Markdown and the chart (`bench.scaling`
says what each measures)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from dataclasses import asdict
from typing import Any

from bench.broker import CREATED, create_topics, delete_topics, make_events
from bench.e2e_kafka.systems import latency_baseline, throughput_baseline
from bench.report import (
    add_kafka_args,
    add_out_dir,
    comma_list,
    machine_info,
    new_parser,
    params_of,
    require_positive,
    run_main,
    start_logging,
    write_results,
)
from bench.scaling.chart import write_chart
from bench.scaling.render import failures, fill_ratios, render_markdown, text_tables
from bench.scaling.systems import (
    ALL_CANDIDATES,
    Config,
    Params,
    latency_headwater,
    loop_params,
    plan,
    throughput_headwater,
)
from daemon.kafka_client import make_producer, produce_all

log = logging.getLogger("bench.scaling")
STEM = "scaling"


def parse_args(argv: list[str] | None = None) -> Params:
    parser = new_parser(
        "bench.scaling",
        "Headwater's events/s and latency against processes, workers, batch size and candidates, "
        "one factor at a time, with the plain consume/produce loop in the same run.",
    )
    add = parser.add_argument
    add_kafka_args(parser)
    add("-n", "--n-events", type=int, default=200_000, help="events pre-loaded for the throughput runs")
    add("--rate", type=float, default=5000.0, help="events/s sent in the latency runs")
    add("--duration", type=float, default=10.0, help="seconds of sending in the latency runs")
    add("--partitions", type=int, default=8, help="partitions of every fresh topic")
    add("--processes", default="1,2,4", help="processes swept (headwater run --processes), comma-separated")
    add("--workers", default="1,2", help="workers per process swept (runtime.workers)")
    add("--batch-sizes", default="256,512,1024", help="micro-batch sizes swept (batching.max_size)")
    add("--candidates", default="0,2,4", help=f"candidate counts swept (0 to {len(ALL_CANDIDATES)})")
    add("--base", default="1,1,512,1", help="the base point: processes,workers,batch size,candidates")
    add("--learner", default="river-logreg", help="the champion's learner")
    add("--max-wait-ms", type=float, default=5.0, help="batching.max_wait_ms, and the loop's consume wait")
    add("--warmup", type=float, default=1.0, help="seconds of warm-up sending before each latency run")
    add("--timeout", type=float, default=180.0, help="bound on every wait of a run (start-up included), seconds")
    add("--stop-timeout", type=float, default=30.0, help="seconds the daemon has to exit 0 after SIGTERM")
    add_out_dir(parser, "the JSON, the Markdown and the PNG")
    a = parser.parse_args(argv)
    require_positive(parser, a, "n_events", "rate", "duration", "partitions", "max_wait_ms", "timeout", "stop_timeout")
    sweeps = {name: _counts(parser, name, getattr(a, name)) for name in ("processes", "workers", "batch_sizes")}
    candidates = _counts(parser, "candidates", a.candidates, least=0)
    base = _counts(parser, "base", a.base, least=0)
    if len(base) != 4 or min(base[:3]) < 1:
        parser.error("--base takes four numbers: processes,workers,batch size (each >= 1),candidates")
    if max((*candidates, base[3])) > len(ALL_CANDIDATES):
        parser.error(f"--candidates and the base's candidates go up to {len(ALL_CANDIDATES)}")
    return Params(
        bootstrap=a.bootstrap,
        n_events=a.n_events,
        rate=a.rate,
        duration_s=a.duration,
        partitions=a.partitions,
        processes=sweeps["processes"],
        workers=sweeps["workers"],
        batch_sizes=sweeps["batch_sizes"],
        candidates=candidates,
        base=Config(*base),
        learner=a.learner,
        batch_max_wait_ms=a.max_wait_ms,
        warmup_s=max(a.warmup, 0.0),
        timeout_s=a.timeout,
        stop_timeout_s=a.stop_timeout,
        keep_topics=a.keep_topics,
        out_dir=a.out_dir,
    )


def _counts(parser: argparse.ArgumentParser, name: str, text: str, least: int = 1) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in comma_list(text))
    except ValueError:
        parser.error(f"--{name.replace('_', '-')} takes whole numbers, comma-separated")
    if not values or min(values) < least:
        parser.error(f"--{name.replace('_', '-')} takes numbers >= {least}, comma-separated")
    return values


def main(argv: list[str] | None = None) -> int:
    start_logging(log)
    p = parse_args(argv)
    started = time.perf_counter()
    configs, sweeps = plan(p)
    params = params_of(p) | {"n_latency_events": p.n_latency_events, "candidate_sets": ALL_CANDIDATES,
                             "argv": sys.argv[1:] if argv is None else argv}  # fmt: skip
    report: dict[str, Any] = {"params": params, "machine": machine_info(p), "loop": {}, "runs": {},
                              "sweeps": sweeps, "total_s": 0.0}  # fmt: skip
    log.info("%d configurations: %s", len(configs), ", ".join(c.label for c in configs))
    log.info("generating %d events", max(p.n_events, p.n_latency_events))
    events = make_events(max(p.n_events, p.n_latency_events))
    measured = events[: p.n_latency_events]
    try:
        events_topic = f"bench.scale.tp.events.{uuid.uuid4().hex[:10]}"
        create_topics(p, [events_topic])
        log.info("pre-loading %d events on %s", p.n_events, events_topic)
        produce_all(make_producer(p.bootstrap), ((events_topic, k, v) for k, v in events[: p.n_events]))
        for batch in sorted({c.batch_size for c in configs}):
            lp = loop_params(p, batch)
            log.info("the loop at batch size %d: throughput, then latency", batch)
            throughput = throughput_baseline(lp, events_topic)
            report["loop"][str(batch)] = {"throughput": throughput, "latency": latency_baseline(lp, measured)}
        for c in configs:
            log.info("%s: throughput (%d events)", c.label, p.n_events)
            throughput = throughput_headwater(p, c, events_topic)
            log.info("%s: latency (%d events at %.0f/s)", c.label, len(measured), p.rate)
            latency = latency_headwater(p, c, measured)
            report["runs"][c.label] = {"config": asdict(c), "throughput": throughput, "latency": latency}
    finally:
        if not p.keep_topics:
            log.info("deleting the %d topics of this run", len(CREATED))
            delete_topics(p.bootstrap, CREATED)
    fill_ratios(report)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["total_s"] = round(time.perf_counter() - started, 1)
    print(text_tables(report))
    write_results(p.out_dir, STEM, report, render_markdown(report), report["total_s"])
    print(f"wrote {write_chart(report, p.out_dir / f'{STEM}.png')}")
    failed = failures(report)
    if failed:
        print(f"a daemon did not exit 0 within the bound after SIGTERM, or served an event twice: {failed}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
