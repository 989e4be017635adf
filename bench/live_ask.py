"""What serving pays to ask a process lane for a micro-batch's predictions (live refresh from a
process, `ProcessLane.ask`), against a bare pipe round trip to a process holding the same model,
in the same run.

`ProcessLane.ask` sends a question from the serving thread when it fits an empty pipe (a larger
one goes through a writer thread, so serving never blocks on a full pipe) and takes the answer
from a reader thread, so that the lane's process never blocks on an answer nobody reads. The
baseline is what the first version did, and the floor of any design: the serving thread itself
sends the question down a pipe and waits for the answer on it. The gap is the reader thread's
hand-off, paid once per micro-batch.

Both sides: a river-logreg model that has learned ``--events`` events of the parity ``rbf``
stream, questions of ``--rows`` events (a 5 ms micro-batch at 3,000 events/s is ~15; 64 by
default), ``--repeat`` timed questions after ``--warmup`` untimed ones, in interleaved rounds;
every answer is checked against the model in this process. Run from the repository root::

    .venv/bin/python -m bench.live_ask        # writes bench/results/live_ask.{json,md}
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from bench.alone import grown
from bench.report import RESULTS, git_commit, new_parser, write_results
from bench.streams import rbf
from dataflows.jobs import LaneState
from dataflows.lanes import LiveRefresh, ProcessLane
from dataflows.lanes.ask import LiveModel
from dataflows.lanes.child import CONTEXT
from learners import Learner


def _answer(conn: Connection, learner: Learner) -> None:  # pragma: no cover - the baseline's process
    """The baseline's process: answer every question on ``conn`` until it closes."""
    while True:
        try:
            x = conn.recv()
        except EOFError:
            return
        conn.send(np.asarray(learner.predict_proba(x), dtype=np.float64))


class _Board:
    """What `LiveRefresh.publish` reaches: the last model published."""

    def __init__(self) -> None:
        self.fresh: Learner | None = None

    def serve_fresh(self, group: str, *, champion: str, version: str | None, learner: Learner | None) -> bool:
        self.fresh = learner
        return True


def _model(events: int) -> tuple[Learner, np.ndarray]:
    """river-logreg after ``events`` events of the parity ``rbf`` stream, in batches of 60, and the
    5,000 events that follow (the questions come from them)."""
    s = rbf(events + 5_000, 42)
    learner = grown("river-logreg", s, events)
    return learner, s.x[events:]


def _time(ask: Any, questions: list[np.ndarray], expected: list[np.ndarray]) -> list[float]:
    out = []
    for x, want in zip(questions, expected, strict=True):
        started = time.perf_counter()
        got = ask(x)
        out.append(time.perf_counter() - started)
        np.testing.assert_allclose(got, want)
    return out


def run(events: int, rows: int, repeat: int, warmup: int, rounds: int) -> dict[str, Any]:
    learner, pool = _model(events)
    rng = np.random.default_rng(0)
    questions = [pool[rng.integers(0, len(pool) - rows, size=1)[0] :][:rows] for _ in range(repeat + warmup)]
    expected = [np.asarray(learner.predict_proba(x), dtype=np.float64) for x in questions]

    parent, child = CONTEXT.Pipe()
    bare = CONTEXT.Process(target=_answer, args=(child, learner.clone(include_state=True)), daemon=True)
    bare.start()
    child.close()

    def ask_pipe(x: np.ndarray) -> np.ndarray:
        parent.send(x)
        return parent.recv()  # type: ignore[no-any-return]

    board = _Board()
    lane = ProcessLane("fork", LaneState("default/2", learner.clone(include_state=True), True), max_backlog=100,
                       serves=True, answer_s=5.0)  # fmt: skip
    lane.set_live(LiveRefresh(board, "default", "default/1", "default/2"))  # type: ignore[arg-type]
    deadline = time.monotonic() + 120
    while not isinstance(board.fresh, LiveModel):
        if time.monotonic() > deadline:
            raise TimeoutError("the process lane was never published")
        time.sleep(0.01)
    live = board.fresh
    samples: dict[str, list[float]] = {"pipe": [], "lane": []}
    try:
        for _ in range(rounds):
            for name, ask in (("pipe", ask_pipe), ("lane", live.predict_proba)):
                _time(ask, questions[:warmup], expected[:warmup])
                samples[name] += _time(ask, questions[warmup:], expected[warmup:])
    finally:
        lane.close()
        parent.close()
        bare.join(timeout=10)

    def summary(values: list[float]) -> dict[str, float]:
        us = sorted(1e6 * v for v in values)
        return {
            "p50_us": statistics.median(us),
            "p99_us": us[int(0.99 * (len(us) - 1))],
            "mean_us": statistics.fmean(us),
        }

    pipe, lane_s = summary(samples["pipe"]), summary(samples["lane"])
    return {
        "params": {"events": events, "rows": rows, "repeat": repeat, "warmup": warmup, "rounds": rounds},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "commit": git_commit()},
        "pipe": pipe,
        "lane": lane_s,
        "ratio_p50": lane_s["p50_us"] / pipe["p50_us"],
        "ratio_p99": lane_s["p99_us"] / pipe["p99_us"],
        "extra_p50_us": lane_s["p50_us"] - pipe["p50_us"],
    }


def render(result: dict[str, Any]) -> str:
    p, m = result["params"], result["machine"]
    rows = [
        "| way | p50 µs | p99 µs | mean µs |",
        "|:---|---:|---:|---:|",
        *(
            f"| {label} | {result[key]['p50_us']:.0f} | {result[key]['p99_us']:.0f} | {result[key]['mean_us']:.0f} |"
            for key, label in (
                ("pipe", "bare pipe, asked from the serving thread (baseline)"),
                ("lane", "`ProcessLane.ask`: the answer through a reader thread"),
            )
        ),
    ]
    return "\n".join([
        "# Asking a process lane for a micro-batch's predictions",
        "",
        f"{m['cpus']} CPU(s), Python {m['python']}, headwater commit {m['commit']}; river-logreg after "
        f"{p['events']:,} events of the parity `rbf` stream, questions of {p['rows']} events, "
        f"{p['repeat']:,} timed per way and round after {p['warmup']} untimed, {p['rounds']} interleaved rounds. "
        "Produced by `python -m bench.live_ask`.",
        "",
        *rows,
        "",
        f"`ProcessLane.ask` / bare pipe: **{result['ratio_p50']:.2f}x** at p50, {result['ratio_p99']:.2f}x at p99 "
        f"({result['extra_p50_us']:+.0f} µs a micro-batch at p50). The difference is the reader thread's hand-off, "
        "which keeps the lane's process from blocking on an answer nobody reads; it is paid once per "
        "micro-batch, not per event.",
        "",
    ])  # fmt: skip


def main() -> None:
    parser = new_parser("bench.live_ask", __doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=1_000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stem", default="live_ask")
    args = parser.parse_args()
    result = run(args.events, args.rows, args.repeat, args.warmup, args.rounds)
    write_results(RESULTS, args.stem, result, render(result))
    print(render(result))


if __name__ == "__main__":
    main()
