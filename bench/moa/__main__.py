"""``python -m bench.moa``: the command line, then the parts asked for (``--parts``) on one seeded
stream, the tables, what the numbers say, the JSON and the Markdown."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.broker import CREATED, delete_topics
from bench.moa import PARTS, PROBE_EVENTS, WARM_EVENTS, Params
from bench.moa.calls import CALL_EVENTS_FACTOR, calls
from bench.moa.render import calls_rows, render_markdown, startup_rows, throughput_rows, verdicts
from bench.moa.startup import startup
from bench.moa.throughput import throughput
from bench.report import (
    add_kafka_args,
    add_out_dir,
    comma_list,
    machine_info,
    moa_versions,
    new_parser,
    params_of,
    render_text,
    require_positive,
    run_main,
    start_logging,
    write_results,
)
from bench.streams import STREAMS, take

log = logging.getLogger("bench.moa")


def parse_args(argv: list[str] | None = None) -> Params:
    parser = new_parser(
        "bench.moa",
        "MOA learners behind Headwater: per-event vs batched calls, ARF as champion at 5,000 "
        "events/s vs CapyMOA alone, start-up time and memory.",
    )
    add = parser.add_argument
    add_kafka_args(parser)
    add("--partitions", type=int, default=1, help="partitions of every fresh topic")
    add("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    add("--stream", default="rbf", choices=sorted(STREAMS), help="the bench.streams stream")
    add("--seed", type=int, default=42, help="seed of the stream")
    add("--model-seed", type=int, default=1, help="seed of the forests")
    add("--calls-events", type=int, default=20_000, help="events per run of the calls part (moa-hat: 5x)")
    add("--calls-batch", type=int, default=100, help="batch of the batched bridge in the calls part")
    add("--calls-rounds", type=int, default=5, help="rounds of the calls part")
    add("--rate", type=float, default=5000.0, help="events/s offered in the throughput part")
    add("--duration", type=float, default=30.0, help="seconds of sending in the throughput part")
    add("--warmup", type=float, default=2.0, help="seconds of warm-up sending at the rate before measuring")
    add("--timeout", type=float, default=180.0, help="bound on every wait, seconds")
    add("--startup-reps", type=int, default=5, help="repetitions of each start-up process")
    add("--startup-events", type=int, default=5000, help="events predicted and learned by the '+ events' processes")
    add("--quick", action="store_true", help="a smoke run: 5,000 calls events, 1 round, 6 s of sending, 1 rep")
    add_out_dir(parser, "moa.json and moa.md")
    a = parser.parse_args(argv)
    parts = comma_list(a.parts)
    if not parts or set(parts) - set(PARTS):
        parser.error(f"--parts takes some of {', '.join(PARTS)}")
    if a.quick:
        a.calls_events, a.calls_rounds, a.duration, a.startup_reps, a.startup_events = 5000, 1, 6.0, 1, 2000
    require_positive(parser, a, "calls_events", "calls_batch", "calls_rounds", "rate", "duration", "timeout",
                     "startup_reps", "startup_events", "partitions")  # fmt: skip
    return Params(
        bootstrap=a.bootstrap, partitions=a.partitions, parts=parts, stream=a.stream, seed=a.seed,
        model_seed=a.model_seed, calls_events=a.calls_events, calls_batch=a.calls_batch, calls_rounds=a.calls_rounds,
        rate=a.rate, duration_s=a.duration, warmup_s=max(a.warmup, 0.0), timeout_s=a.timeout,
        startup_reps=a.startup_reps, startup_events=a.startup_events, keep_topics=a.keep_topics, out_dir=a.out_dir,
        quick=a.quick,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    start_logging(log)
    args = sys.argv[1:] if argv is None else argv
    p = parse_args(args)
    started = time.perf_counter()
    machine = machine_info(p)
    n = max(round(p.rate * p.duration_s), p.calls_events * max(CALL_EVENTS_FACTOR.values()) + PROBE_EVENTS,
            p.startup_events)  # fmt: skip
    s = STREAMS[p.stream](n, p.seed)
    warm = STREAMS[p.stream](WARM_EVENTS + PROBE_EVENTS, p.seed + 1000)
    report: dict[str, Any] = {"argv": args, "stream": s.description}
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "calls": lambda: calls(p, s, warm),
        "throughput": lambda: throughput(p, take(s, round(p.rate * p.duration_s)), warm),
        "startup": lambda: startup(p, s),
    }
    try:
        for part in p.parts:
            report[part] = steps[part]()
    finally:
        if not p.keep_topics:
            delete_topics(p.bootstrap, CREATED)
    total_s = round(time.perf_counter() - started, 1)
    report |= {"params": params_of(p), "machine": machine | moa_versions(), "total_s": total_s}
    for part, rows in (("calls", calls_rows), ("throughput", throughput_rows), ("startup", startup_rows)):
        if part in report:
            print(render_text(rows(report[part])) + "\n")
    print("\n".join(verdicts(report)))
    write_results(p.out_dir, "moa", report, render_markdown(report), total_s)
    t = report.get("throughput")
    if t is not None and not t["headwater"]["every_event_exactly_once"]:
        print("not every event got exactly one prediction", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
