"""``python -m bench.candidates``: the command line, then the runs in their order (rounds of 0, 2
and 4 candidates in each kind of lane, interleaved; then the slow case and its reference), the
tables, the JSON and the Markdown."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import time
from typing import Any

from bench.broker import CREATED, delete_topics, make_events
from bench.candidates.render import fill_ratios, lane_rows, latency_rows, render_markdown
from bench.candidates.runs import CANDIDATE_SETS, CHAMPION, LONG_EPOCH_S, Params, run_one, slow_candidates
from bench.report import (
    add_kafka_args,
    add_out_dir,
    comma_list,
    exit_code,
    machine_info,
    new_parser,
    params_of,
    render_text,
    require_positive,
    run_main,
    start_logging,
    write_results,
)
from dataflows.lanes.child import start_lane_server

log = logging.getLogger("bench.candidates")


def parse_args(argv: list[str] | None = None) -> Params:
    parser = new_parser(
        "bench.candidates",
        "Headwater's serving latency with 0, 2, 4 candidates and with a slow one, through the broker.",
    )
    add = parser.add_argument
    add_kafka_args(parser)
    add("--rate", type=float, default=2000.0, help="events/s sent in the 0/2/3/4-candidate runs")
    add("--duration", type=float, default=10.0, help="seconds of sending in the 0/2/3/4-candidate runs")
    add("--rounds", type=int, default=2, help="rounds of the 0/2/3/4-candidate runs, interleaved (0: skip them)")
    add("--slow-events", type=int, default=60_000, help="events offered in the slow-candidate run (0: skip it)")
    add("--slow-rate", type=float, default=1000.0, help="events/s in the slow-candidate run and its reference")
    add("--slow-reference", type=float, default=20.0, help="seconds of the 0-candidate run at --slow-rate")
    add("--slow-trees", type=int, default=10, help="trees (n_models) of the slow forest candidate")
    add(
        "--slow-learner",
        choices=["river-arf", "moa-arf"],
        default="river-arf",
        help="the slow forest: River's or MOA's",
    )
    add(
        "--long-epoch-run",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="repeat the slow case with no Bytewax epoch end (snapshot) inside the run",
    )
    add(
        "--lanes",
        default="thread,process",
        help="runtime.lanes to measure, comma-separated (thread, process): each candidate set runs with each",
    )
    add("--workers", type=int, default=1, help="Bytewax worker threads")
    add("--partitions", type=int, default=4, help="partitions of every fresh topic")
    add("--batch-size", type=int, default=512, help="micro-batch size")
    add("--max-wait-ms", type=float, default=5.0, help="micro-batch wait")
    add("--max-lag-batches", type=int, default=None, help="promotion.max_lag_batches (default: the daemon's)")
    add("--promote", action="store_true", help="stock promotion gate (default: no candidate can be promoted)")
    add("--warmup", type=float, default=1.0, help="seconds of warm-up sending before each measurement")
    add("--timeout", type=float, default=60.0, help="bound on every wait of a run, seconds")
    add_out_dir(parser)
    add("--stem", default="candidates", help="file names of the results: <stem>.json and <stem>.md")
    a = parser.parse_args(argv)
    positive = ("rate", "duration", "slow_rate", "slow_reference", "slow_trees", "workers", "partitions", "batch_size")
    require_positive(parser, a, *positive, "max_wait_ms", "timeout")
    lanes = comma_list(a.lanes)
    if not lanes or set(lanes) - {"thread", "process"}:
        parser.error("--lanes takes thread, process or both, comma-separated")
    if a.slow_events < 0 or a.rounds < 0 or (a.max_lag_batches is not None and a.max_lag_batches < 1):
        parser.error("--slow-events and --rounds must be >= 0 and --max-lag-batches >= 1")
    return Params(
        bootstrap=a.bootstrap,
        rate=a.rate,
        duration_s=a.duration,
        rounds=a.rounds,
        slow_events=a.slow_events,
        slow_rate=a.slow_rate,
        slow_reference_s=a.slow_reference,
        slow_trees=a.slow_trees,
        slow_learner=a.slow_learner,
        long_epoch_run=a.long_epoch_run,
        lanes=lanes,
        workers=a.workers,
        partitions=a.partitions,
        batch_max_size=a.batch_size,
        batch_max_wait_ms=a.max_wait_ms,
        max_lag_batches=a.max_lag_batches,
        promote=a.promote,
        warmup_s=max(a.warmup, 0.0),
        timeout_s=a.timeout,
        keep_topics=a.keep_topics,
        out_dir=a.out_dir,
        stem=a.stem,
    )


def main(argv: list[str] | None = None) -> int:
    start_logging(log)
    p = parse_args(argv)
    started = time.perf_counter()
    machine = machine_info(p)
    n_fast = round(p.rate * p.duration_s)
    n_ref = round(p.slow_rate * p.slow_reference_s)
    log.info("generating %d events", max(n_fast, p.slow_events, n_ref))
    events = make_events(max(n_fast, p.slow_events, n_ref))
    if "process" in p.lanes:  # what a daemon does at start-up, once for all the runs of this process
        start_lane_server(["learners.river_learner", "learners.torch_learner", "learners.moa", "river.forest"])
    runs: dict[str, dict[str, Any]] = {}
    slow = dataclasses.replace(p, rate=p.slow_rate, duration_s=p.slow_events / p.slow_rate)
    slow_reference = dataclasses.replace(p, rate=p.slow_rate, duration_s=p.slow_reference_s)
    try:
        for r in range(1, p.rounds + 1):  # interleaved: a burst of load elsewhere hits one round, not one set
            suffix = f", round {r}" if p.rounds > 1 else ""
            reference = f"0 candidates{suffix}"
            runs[reference] = run_one(p, reference, [], events[:n_fast])
            names = []
            for lanes in p.lanes:
                for name, candidates in list(CANDIDATE_SETS.items())[1:]:
                    names.append(f"{name}, {lanes} lanes{suffix}")
                    runs[names[-1]] = run_one(p, names[-1], candidates, events[:n_fast], {"lanes": lanes})
            fill_ratios(runs, reference, names)
        if p.slow_events:
            ref_name = f"0 candidates @ {p.slow_rate:g}/s"
            runs[ref_name] = run_one(slow_reference, ref_name, [], events[:n_ref])
            names = []
            for lanes in p.lanes:
                names.append(f"{p.slow_learner} candidate @ {p.slow_rate:g}/s, {lanes} lanes")
                arf_events = events[: p.slow_events]
                runs[names[-1]] = run_one(slow, names[-1], slow_candidates(p), arf_events, {"lanes": lanes})
                if p.long_epoch_run:
                    names.append(f"{p.slow_learner} candidate @ {p.slow_rate:g}/s, {lanes} lanes, no epoch end")
                    long_epoch = {"snapshot_interval_s": LONG_EPOCH_S, "lanes": lanes}
                    runs[names[-1]] = run_one(slow, names[-1], slow_candidates(p), arf_events, long_epoch)
            fill_ratios(runs, ref_name, names)
    finally:
        if not p.keep_topics:
            log.info("deleting the %d topics of this run", len(CREATED))
            delete_topics(p.bootstrap, CREATED)
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    params = params_of(p)
    params |= {"champion": CHAMPION, "candidate_sets": CANDIDATE_SETS, "slow_candidates": slow_candidates(p)}
    total_s = round(time.perf_counter() - started, 1)
    report = {"params": params, "machine": machine, "runs": runs, "total_s": total_s}
    print(render_text(latency_rows(runs)), render_text(lane_rows(runs)), sep="\n\n")
    write_results(p.out_dir, p.stem, report, render_markdown(report), total_s)
    failed = [n for n, r in runs.items() if r["missing"] or not r["stopped_within_bound"]]
    return exit_code(failed, "not every event was served, or the daemon did not stop in time")


if __name__ == "__main__":
    run_main(main)
