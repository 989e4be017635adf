"""What a copy of a grown River model with its state costs: `RiverLearner.clone(include_state=True)`
(a pickle round trip in memory) against ``copy.deepcopy``, which it replaced, in the same run, on
the same model.

A copy is taken on every promotion (the frozen champion) and, with live refresh, after the batches
a refresh fork learns, so its cost is time the serving thread or the fork's lane does not have.

The model (river-hoeffding) first learns ``--events`` events of the parity ``rbf`` stream in
batches of 60; each way is then timed ``--repeat`` times after ``--warmup`` untimed copies, in two
interleaved rounds, median reported, and both copies are checked to predict as the model does.
(A MOA model's copy is the bridge's serialisation round trip; a field-by-field copier in Java was
tried and dropped: 88 against 106 ms for a 10-tree forest after 12,000 events, warm, not worth
its code.) Run from the repository root::

    .venv/bin/python -m bench.copies        # writes bench/results/copies.{json,md}
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.alone import grown
from bench.report import add_out_dir, git_commit, new_parser, write_results
from bench.streams import rbf


def _median_ms(make: Callable[[], Any], repeat: int, warmup: int) -> tuple[float, Any]:
    made = None
    for _ in range(warmup):
        made = make()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        made = make()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times), made


def measure(name: str, events: int, repeat: int, warmup: int) -> dict[str, Any]:
    s = rbf(events, 42)
    learner, probe = grown(name, s, events), s.x[:500]
    headwater, baseline = (lambda: learner.clone(include_state=True)), (lambda: copy.deepcopy(learner))
    expected = learner.predict_proba(probe)
    out: dict[str, Any] = {"learner": name, "events_learned": events}
    # Interleaved, so that both see the same state of the machine (and of the JIT).
    for way, make in (
        ("baseline", baseline),
        ("headwater", headwater),
        ("baseline2", baseline),
        ("headwater2", headwater),
    ):
        ms, made = _median_ms(make, repeat, warmup)
        np.testing.assert_array_equal(made.predict_proba(probe), expected)  # an exact copy, either way
        out[f"{way}_ms"] = round(ms, 2)
    base = statistics.mean([out["baseline_ms"], out["baseline2_ms"]])
    hw = statistics.mean([out["headwater_ms"], out["headwater2_ms"]])
    out |= {"baseline_mean_ms": round(base, 2), "headwater_mean_ms": round(hw, 2), "speedup": round(base / hw, 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = new_parser("bench.copies", __doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=12_000, help="events each model learns first")
    parser.add_argument("--repeat", type=int, default=15, help="timed copies per way and round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed copies before each timing")
    add_out_dir(parser)
    a = parser.parse_args(argv)
    started = time.perf_counter()
    results = [measure("river-hoeffding", a.events, a.repeat, a.warmup)]
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "commit": git_commit(),
               "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    report = {"params": vars(a) | {"out_dir": str(a.out_dir)}, "machine": machine, "results": results,
              "total_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    lines = [
        "# Copying a grown River model with its state: Headwater against the copy it replaced",
        "",
        f"Python {machine['python']}, {machine['cpus']} CPU(s), headwater commit {machine['commit']}. Produced by "
        f"`python -m bench.copies` in {report['total_s']:.0f} s: each model learned {a.events:,} events of the parity "
        f"`rbf` stream; median of {a.repeat} copies after {a.warmup} untimed ones, two interleaved rounds each way.",
        "",
        "| learner | Headwater | ms (rounds) | baseline | ms (rounds) | speed-up |",
        "|---|---|---:|---|---:|---:|",
    ]
    how = {"river-hoeffding": ("pickle round trip", "copy.deepcopy")}
    for r in results:
        hw, base = how[r["learner"]]
        lines.append(
            f"| {r['learner']} | {hw} | {r['headwater_mean_ms']} ({r['headwater_ms']}, {r['headwater2_ms']}) | {base} "
            f"| {r['baseline_mean_ms']} ({r['baseline_ms']}, {r['baseline2_ms']}) | {r['speedup']}x |"
        )
    lines += ["", "Both ways give a copy that predicts exactly as the model does (checked on 500 events)."]
    write_results(a.out_dir, "copies", report, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
