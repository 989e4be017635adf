"""``python -m bench.parity``: the command line, then every (learner, stream) pair in turn
(`bench.parity.pair`), the tables, the JSON and the Markdown."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict
from typing import Any

from bench.broker import CREATED, delete_topics
from bench.parity.pair import run_pair
from bench.parity.render import moa_rows, render_markdown, rows
from bench.parity.served import Params, served_config
from bench.report import (
    add_kafka_args,
    add_out_dir,
    comma_list,
    exit_code,
    machine_info,
    moa_versions,
    new_parser,
    params_of,
    render_text,
    run_main,
    start_logging,
    write_results,
)
from bench.streams import DEFAULT_LEARNERS, LEARNER_SPECS, MOA_CLASSES, MOA_LEARNERS, STREAMS

log = logging.getLogger("bench.parity")


def parse_args(argv: list[str] | None = None) -> Params:
    parser = new_parser(
        "bench.parity", "A learner behind Headwater (through the broker) against the same learner alone, same stream."
    )
    add = parser.add_argument
    add_kafka_args(parser)
    add("--events", type=int, default=30_000, help="events per stream")
    add("--rate", type=float, default=3000.0, help="events/s sent to Headwater")
    add("--delay", type=int, default=200, help="a label comes this many events after its event")
    add("--window", type=int, default=2000, help="events in the worst window")
    add("--warmup", type=int, default=5000, help="worst windows start at or after this event")
    add(
        "--learners",
        default=",".join(DEFAULT_LEARNERS),
        help=f"comma-separated, of {', '.join(LEARNER_SPECS)}; 'moa' for {', '.join(MOA_LEARNERS)}",
    )
    add("--streams", default=",".join(STREAMS), help=f"comma-separated, of {', '.join(STREAMS)}")
    add("--partitions", type=int, default=1, help="partitions of every fresh topic (1 keeps the stream's order)")
    add("--seed", type=int, default=42, help="seed of the generators")
    add("--timeout", type=float, default=120.0, help="bound on every wait of a run, seconds")
    add(
        "--gate", choices=("refresh", "live", "shadow"), default="refresh",
        help="the fork's gate on the served side (live: refresh with promotion.live_refresh)",
    )  # fmt: skip
    add("--refresh-samples", type=int, default=100, help="promotion.refresh_samples with --gate refresh")
    add(
        "--live-wait-ms", type=float, default=None,
        help="promotion.live_refresh_wait_ms with --gate live (default: the daemon's)",
    )  # fmt: skip
    add(
        "--lanes", choices=("thread", "process"), default="thread",
        help="runtime.lanes with --gate refresh or live (process: the fork learns, and with live serves, in a process)",
    )  # fmt: skip
    add("--restart-on-drift", action="store_true", help="promotion.restart_on_drift on the served side")
    add("--max-wait-ms", type=float, default=5.0, help="batching.max_wait_ms of the daemon")
    add("--quick", action="store_true", help="a smoke run: 12,000 events, warm-up 3,000")
    add_out_dir(parser)
    add("--stem", default=None, help="file name of the results (default: parity-moa with a MOA learner, else parity)")
    a = parser.parse_args(argv)
    learners = tuple(dict.fromkeys(y for x in comma_list(a.learners) for y in (MOA_LEARNERS if x == "moa" else (x,))))
    streams = comma_list(a.streams)
    if not learners or set(learners) - set(LEARNER_SPECS):
        parser.error(f"--learners takes some of {', '.join(LEARNER_SPECS)}")
    if not streams or set(streams) - set(STREAMS):
        parser.error(f"--streams takes some of {', '.join(STREAMS)}")
    events, warmup = (12_000, 3000) if a.quick else (a.events, a.warmup)
    if a.rate <= 0 or a.delay < 0 or a.window < 1 or warmup < 0 or events < warmup + a.window:
        parser.error("--rate must be positive, --delay >= 0, and --events >= --warmup + --window")
    return Params(
        bootstrap=a.bootstrap, events=events, rate=a.rate, delay=a.delay, window=a.window, warmup=warmup,
        learners=learners, streams=streams, partitions=a.partitions, seed=a.seed, timeout_s=a.timeout,
        keep_topics=a.keep_topics, out_dir=a.out_dir, gate=a.gate, refresh_samples=a.refresh_samples,
        live_wait_ms=a.live_wait_ms, restart_on_drift=a.restart_on_drift, max_wait_ms=a.max_wait_ms, quick=a.quick,
        lanes=a.lanes,
        stem=a.stem or ("parity-moa" if set(learners) & set(MOA_CLASSES) else "parity"),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    start_logging(log)
    args = sys.argv[1:] if argv is None else argv
    p = parse_args(args)
    started = time.perf_counter()
    machine = machine_info(p)
    if "torch-mlp" in p.learners:
        import torch

        torch.set_num_threads(1)  # as the daemon does (runtime.torch_threads)
    results: list[dict[str, Any]] = []
    streams: dict[str, str] = {}
    try:
        for stream_name in p.streams:
            s = STREAMS[stream_name](p.events, p.seed)
            streams[s.name] = s.description
            for name in p.learners:
                results.append(run_pair(p, name, s))
                print(render_text(rows(results[-1:])), flush=True)
    finally:
        if not p.keep_topics:
            delete_topics(p.bootstrap, CREATED)
    params = params_of(p)
    params |= {"served_config": served_config(p), "learner_specs": {k: asdict(v) for k, v in LEARNER_SPECS.items()}}
    machine |= moa_versions()
    total_s = round(time.perf_counter() - started, 1)
    report = {"params": params, "argv": args, "machine": machine, "streams": streams, "results": results,
              "total_s": total_s}  # fmt: skip
    print(render_text(rows(results)))
    if len(moa_rows(results)) > 1:
        print("\n" + render_text(moa_rows(results)))
    write_results(p.out_dir, p.stem, report, render_markdown(report), total_s)
    missing = [
        f"{r['learner']} on {r['stream']}" for r in results if r["headwater"]["served"] != r["headwater"]["offered"]
    ]
    return exit_code(missing)


if __name__ == "__main__":
    run_main(main)
