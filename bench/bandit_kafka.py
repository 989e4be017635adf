"""``python -m bench.bandit_kafka``: the bandit gate (`model.vote.policy: bandit`) on a live daemon
through the real broker, over seeded runs: does it promote the better of three canaries where one
is clearly better, and none where all are as good as the champion?

The models are *noisy oracles* (`noisy_oracle`): each knows the stream's concept (SEA's
``x1 + x2 <= 9.5``) and answers wrong on a fixed share of the events, chosen by a hash of the
event's features and the model's seed — so each has a known accuracy, its errors are independent
of the others', and nothing it learns moves it. Two scenarios, ``--runs`` seeds each:

- **clear**: the champion and two candidates wrong on 25 %, one candidate on 15 %: the gate should
  promote that one (and only it);
- **equal**: the champion and the three candidates wrong on 20 %: any promotion is a false one; the
  gate bounds their rate by ``promotion.alpha`` (0.05).

Every run is a fresh daemon on fresh topics (`bench.parity.served.headwater`); per run, the first
promotion decision the gate made and the events it took. Results go to
``bench/results/bandit_kafka.{json,md}``::

    .venv/bin/python -m bench.bandit_kafka            # 20 runs a scenario, ~10 min on 2 CPUs
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from bench.broker import CREATED, delete_topics
from bench.parity.served import Params, headwater
from bench.report import (
    add_kafka_args,
    add_out_dir,
    machine_info,
    new_parser,
    params_of,
    run_main,
    start_logging,
    write_results,
)
from bench.streams import Stream
from learners import Artifact, LearnerSpec
from learners.base import FloatArray, IntArray, sha256_of

log = logging.getLogger("bench.bandit_kafka")

ORACLE = "bench.bandit_kafka:noisy_oracle"
THRESHOLD = 9.5  # SEA's concept, variant 3: class 1 when x1 + x2 <= 9.5
SCENARIOS: dict[str, tuple[float, tuple[float, float, float]]] = {  # champion's error, the candidates'
    "clear": (0.25, (0.25, 0.15, 0.25)),
    "equal": (0.20, (0.20, 0.20, 0.20)),
}
NAMES = ("a", "b", "c")


class NoisyOracle:
    """The concept, wrong on ``error`` of the events (by a hash of each event's features and
    ``seed``): a model of known accuracy that learns nothing. Saved as JSON (its three numbers)."""

    def __init__(self, n_features: int, n_classes: int, seed: int = 0, error: float = 0.2) -> None:
        self.n_features, self.n_classes, self.seed, self.error = n_features, n_classes, seed, error

    def predict_proba(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=np.float64)
        truth = (x[:, 0] + x[:, 1] <= THRESHOLD).astype(np.int64)
        h = np.sin(x @ np.array([12.9898, 78.233, 37.719][: x.shape[1]]) + 0.618 * (self.seed + 1)) * 43758.5453
        wrong = (h - np.floor(h)) < self.error
        answer = np.where(wrong, 1 - truth, truth)
        return np.eye(self.n_classes)[answer]

    def learn(self, x: FloatArray, y: IntArray) -> None:
        """Nothing: its accuracy is what it was made with."""

    def clone(self, *, include_state: bool = False) -> Self:
        return type(self)(self.n_features, self.n_classes, self.seed, self.error)

    def save(self, directory: Path) -> Artifact:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "oracle.json"
        path.write_text(json.dumps({"n_features": self.n_features, "n_classes": self.n_classes, "seed": self.seed,
                                    "error": self.error}))  # fmt: skip
        return Artifact(path=path, sha256=sha256_of(path))

    @classmethod
    def load(cls, artifact: Artifact) -> Self:
        return cls(**json.loads(artifact.path.read_text()))


def noisy_oracle(
    n_features: int, n_classes: int, feature_names: Sequence[str], seed: int, error: float = 0.2
) -> NoisyOracle:
    """The factory the daemon builds the models from (``bench.bandit_kafka:noisy_oracle``)."""
    return NoisyOracle(n_features, n_classes, seed, error)


def sea_stream(n: int, seed: int) -> Stream:
    """Three features uniform in [0, 10), class 1 when x1 + x2 <= 9.5, no label noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, size=(n, 3))
    y = (x[:, 0] + x[:, 1] <= THRESHOLD).astype(np.int64)
    return Stream("sea", "SEA's concept (x1 + x2 <= 9.5), no drift", x, y, ["x1", "x2", "x3"], [])


def parse_args(argv: list[str] | None = None) -> tuple[Params, int]:
    parser = new_parser("bench.bandit_kafka", "The bandit gate on a live daemon: seeded runs of two scenarios.")
    add = parser.add_argument
    add_kafka_args(parser)
    add("--runs", type=int, default=20, help="seeded runs per scenario")
    add("--events", type=int, default=12_000, help="events per run")
    add("--rate", type=float, default=4000.0, help="events/s sent to Headwater")
    add("--delay", type=int, default=100, help="a label comes this many events after its event")
    add("--timeout", type=float, default=120.0, help="bound on every wait of a run, seconds")
    add_out_dir(parser)
    a = parser.parse_args(argv)
    p = Params(
        bootstrap=a.bootstrap, events=a.events, rate=a.rate, delay=a.delay, window=1000, warmup=0,
        learners=(ORACLE,), streams=("sea",), partitions=1, seed=0, timeout_s=a.timeout,
        keep_topics=a.keep_topics, out_dir=a.out_dir, gate="bandit", stem="bandit_kafka", lanes="thread",
    )  # fmt: skip
    return p, a.runs


def run_one(p: Params, scenario: str, seed: int) -> dict[str, Any]:
    champion_error, errors = SCENARIOS[scenario]
    candidates = tuple(
        {"name": n, "learner": ORACLE, "params": {"error": e}, "seed": 1000 * seed + i + 1}
        for i, (n, e) in enumerate(zip(NAMES, errors, strict=True))
    )
    run = dataclasses.replace(p, candidates=candidates)
    spec = LearnerSpec(ORACLE, {"error": champion_error}, 1000 * seed)
    hw = headwater(run, spec, sea_stream(p.events, seed))
    gate = [d for d in hw["promotions"] if "the bandit gate" in d["reason"]]
    first = gate[0] if gate else None
    return {
        "scenario": scenario, "seed": seed, "served": hw["served"], "offered": hw["offered"],
        "promoted": None if first is None else first["winner"], "routes": hw["routes"],
        "promoted_at_event": None if first is None else first["at_event"],
    }  # fmt: skip


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scenario, (_, errors) in SCENARIOS.items():
        mine = [r for r in runs if r["scenario"] == scenario]
        best = NAMES[int(np.argmin(errors))] if scenario == "clear" else None
        promoted = [r["promoted"] for r in mine if r["promoted"] is not None]
        out[scenario] = {
            "runs": len(mine), "promoted": len(promoted),
            "promoted_best": sum(1 for w in promoted if w == best) if best else None,
            "promoted_other": sum(1 for w in promoted if w != best),
            "events_to_promotion": sorted(r["promoted_at_event"] for r in mine if r["promoted_at_event"] is not None),
        }  # fmt: skip
    return out


def render_markdown(report: dict[str, Any]) -> str:
    p, s, m = report["params"], report["summary"], report["machine"]
    clear, equal = s["clear"], s["equal"]
    bound = 0.05 * equal["runs"]
    return "\n".join([
        "# The bandit gate on a live daemon, seeded runs",
        "",
        f"Measured on {m['cpu_count']} CPU(s), headwater commit {m.get('headwater_commit', '?')}; "
        f"{p['events']:,} events a run at {p['rate']:.0f}/s through the real broker, labels {p['delay']} events "
        f"late; `python -m bench.bandit_kafka` in {report['total_s']:.0f} s. Models are noisy oracles of SEA's "
        "concept (`bench/bandit_kafka.py`): a known accuracy each, independent errors, nothing learned.",
        "",
        "| scenario | champion wrong on | candidates wrong on | runs | promoted | the best | another |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(f"| {name} | {100 * SCENARIOS[name][0]:.0f} % | "
          f"{', '.join(f'{n}: {100 * e:.0f} %' for n, e in zip(NAMES, SCENARIOS[name][1], strict=True))} | "
          f"{s[name]['runs']} | {s[name]['promoted']} | {s[name]['promoted_best'] if name == 'clear' else '-'} | "
          f"{s[name]['promoted_other']} |" for name in SCENARIOS),
        "",
        f"- clear: the better canary promoted in {clear['promoted_best']} of {clear['runs']} runs, another in "
        f"{clear['promoted_other']}; events served before the promotion: "
        f"{clear['events_to_promotion'] or 'none'}.",
        f"- equal: {equal['promoted']} false promotions in {equal['runs']} runs (the gate's bound, alpha 0.05: "
        f"{bound:.1f} expected at most).",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    start_logging(log)
    args = sys.argv[1:] if argv is None else argv
    p, n = parse_args(args)
    started = time.perf_counter()
    machine = machine_info(p)
    runs: list[dict[str, Any]] = []
    try:
        for seed in range(n):
            for scenario in SCENARIOS:
                runs.append(run_one(p, scenario, seed))
                log.info("%s, seed %d: promoted %s", scenario, seed, runs[-1]["promoted"])
    finally:
        if not p.keep_topics:
            delete_topics(p.bootstrap, CREATED)
    total_s = round(time.perf_counter() - started, 1)
    report = {"params": params_of(p) | {"runs": n}, "argv": args, "machine": machine, "runs": runs,
              "summary": summary(runs), "total_s": total_s}  # fmt: skip
    write_results(p.out_dir, p.stem, report, render_markdown(report), total_s)
    missing = [f"{r['scenario']} {r['seed']}" for r in runs if r["served"] != r["offered"]]
    return 1 if missing else 0


if __name__ == "__main__":
    run_main(main)
