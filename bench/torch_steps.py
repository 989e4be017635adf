"""What TorchMLP's learning costs and buys per event: an Adam step per 4 events with Adam's fused
kernel (Headwater's default since 2850011) against an Adam step per 8 events with the plain kernel
(the default before), in the same run, on the parity ``rbf`` stream.

Learning is on the hot path of a fork's lane: at 3,000 events/s on 2 CPUs every microsecond an
event is 0.3 % of a core. Each way learns the stream in jobs of ``--job`` events on one torch
thread (as the daemon runs it, `runtime.torch_threads`), scoring each job before learning it with
labels ``--delay`` events late (as a lane does); two interleaved rounds, the time of learning only.
The same MLP fed one event at a time is the accuracy reference. Run from the repository root::

    .venv/bin/python -m bench.torch_steps      # writes bench/results/torch_steps.{json,md}
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any

import numpy as np
import torch

from bench.report import add_out_dir, git_commit, new_parser, write_results
from bench.streams import rbf
from learners.torch_learner import TorchMLP


def _learner(way: str, n_features: int) -> TorchMLP:
    if way == "alone":
        return TorchMLP(n_features, 2, device="cpu")
    if way == "headwater":
        return TorchMLP(n_features, 2, device="cpu")  # the defaults: minibatch 4, fused Adam
    # baseline: a step per 8 events, as before 2850011; plain4: a step per 4. Both with Adam's plain
    # kernel (the optimiser is not a constructor knob).
    learner = TorchMLP(n_features, 2, device="cpu", minibatch=8 if way == "baseline" else 4)
    learner._opt = torch.optim.Adam(learner._net.parameters(), lr=learner.lr)
    return learner


def run(way: str, events: int, job: int, delay: int) -> dict[str, Any]:
    s = rbf(events, 42)
    learner = _learner(way, len(s.features))
    size = 1 if way == "alone" else job
    correct = np.zeros(events, dtype=bool)
    learn_s = 0.0
    for start in range(0, events, size):
        end = min(events, start + size)
        correct[start:end] = learner.predict_proba(s.x[start:end]).argmax(axis=1) == s.y[start:end]
        # The labels that arrived by the end of this job: those of events up to end - delay.
        a, b = max(0, start - delay), max(0, end - delay)
        if b > a:
            started = time.perf_counter()
            learner.learn(s.x[a:b], s.y[a:b].astype(np.int64))
            learn_s += time.perf_counter() - started
    return {"us_per_event": round(1e6 * learn_s / events, 1), "accuracy": round(float(correct.mean()), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("bench.torch_steps", __doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--job", type=int, default=80, help="events per job (a lane's micro-batch of labels)")
    parser.add_argument("--delay", type=int, default=200, help="a label comes this many events after its event")
    add_out_dir(parser)
    a = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    rounds: dict[str, list[dict[str, Any]]] = {"baseline": [], "headwater": [], "plain4": []}
    for _ in range(2):  # interleaved, so that every way sees the same state of the machine
        for way in rounds:
            rounds[way].append(run(way, a.events, a.job, a.delay))
    alone = run("alone", a.events, a.job, a.delay)
    results = {
        way: {
            "us_per_event": statistics.mean(r["us_per_event"] for r in rs),
            "rounds_us": [r["us_per_event"] for r in rs],
            "accuracy": rs[0]["accuracy"],
        }
        for way, rs in rounds.items()
    }
    base, hw = results["baseline"]["us_per_event"], results["headwater"]["us_per_event"]
    machine = {
        "python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
        "commit": git_commit(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip
    report = {
        "params": vars(a) | {"out_dir": str(a.out_dir)}, "machine": machine, "results": results, "alone": alone,
        "cost_ratio": round(hw / base, 2), "total_s": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    names = {
        "baseline": "baseline: a step per 8 events, plain Adam (the default before)",
        "plain4": "a step per 4 events, plain Adam",
        "headwater": "Headwater: a step per 4 events, fused Adam (the default)",
    }
    lines = [
        "# TorchMLP: what learning costs and buys per event",
        "",
        f"Python {machine['python']}, torch {machine['torch']}, {machine['cpus']} CPU(s), one torch thread, headwater "
        f"commit {machine['commit']}. Produced by `python -m bench.torch_steps` in {report['total_s']:.0f} s: the "
        f"parity `rbf` stream, {a.events:,} events in jobs of {a.job}, labels {a.delay} events late, each job scored "
        "before it is learned; learning time only, two interleaved rounds.",
        "",
        "| way | µs an event (rounds) | accuracy, % |",
        "|---|---:|---:|",
    ]
    for way in ("baseline", "plain4", "headwater"):
        r = results[way]
        rounds_us = ", ".join(f"{x:g}" for x in r["rounds_us"])
        lines.append(f"| {names[way]} | {r['us_per_event']:.1f} ({rounds_us}) | {100 * r['accuracy']:.2f} |")
    lines += [
        f"| the same MLP alone, a step per event | {alone['us_per_event']:.1f} | {100 * alone['accuracy']:.2f} |",
        "",
        f"Headwater / baseline cost: **{report['cost_ratio']}x** an event.",
    ]
    write_results(a.out_dir, "torch_steps", report, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
