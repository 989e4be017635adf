"""What a recovery snapshot of a model group costs the worker, against deep-copying everything.

Bytewax asks every stateful step for a snapshot at the end of each epoch
(``runtime.snapshot_interval_s``), on the worker thread: while it is taken, no event moves. The
group's state is its models and the label join, which holds up to ``labels.max_pending`` waiting
features (every unlabelled event, until its label comes or the window ends) and as many early
labels. With 100,000 entries, a deep copy of it stalled the worker for seconds.

Two ways, on the same state, in the same run:

* **baseline** — what the group did before: ``copy.deepcopy`` of the whole state, then
  ``pickle.dumps`` of the copy, object by object.
* **headwater** — ``TrainLogic.snapshot()``: the models deep-copied, the join's two dicts copied
  shallowly (their entries are immutable), then ``pickle.dumps``, which writes the join's entries
  with msgspec as two msgpack blobs (``LabelJoin.__getstate__``).

Each is timed ``--repeat`` times (median reported); the restore (``pickle.loads``) is timed too.
Run from the repository root::

    .venv/bin/python -m bench.snapshot            # writes bench/results/snapshot.{json,md}
"""

from __future__ import annotations

import copy
import os
import pickle
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bytewax.testing import TestingSink, TestingSource

from bench.report import add_out_dir, git_commit, new_parser, params_of, write_results
from daemon.wiring import local_deps
from dataflows import FlowConfig, GateSpec, Topics, install_champion
from dataflows.decode import FeatureSchema
from dataflows.jobs import Job
from dataflows.labels import Pending
from dataflows.records import Label, SourceRef
from dataflows.train import GroupState, TrainContext, TrainLogic, new_group_state
from learners import LearnerSpec


@dataclass(frozen=True)
class Params:
    pending_features: int
    pending_labels: int
    n_features: int
    learner: str
    repeat: int
    out_dir: Path


def parse_args(argv: list[str] | None = None) -> Params:
    parser = new_parser("bench.snapshot", __doc__.split("\n\n")[0])
    parser.add_argument("--pending-features", type=int, default=100_000, help="features waiting for labels")
    parser.add_argument("--pending-labels", type=int, default=10_000, help="labels waiting for their event")
    parser.add_argument("--n-features", type=int, default=10, help="features per event")
    parser.add_argument("--learner", default="river-logreg", help="learner of the group's model")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions of each way")
    add_out_dir(parser)
    a = parser.parse_args(argv)
    return Params(a.pending_features, a.pending_labels, a.n_features, a.learner, a.repeat, a.out_dir)


def build_group(p: Params) -> TrainLogic:
    """A group whose model learned a little, with a full label join."""
    features = [f"x{i}" for i in range(p.n_features)]
    config = FlowConfig(
        brokers="unused:9092",
        topics=Topics("events", "predictions", "dead-letters", "model-events", "labels"),
        schema=FeatureSchema(features, [0, 1]),
        learner=LearnerSpec(p.learner, {"device": "cpu"} if p.learner == "torch-mlp" else {}),
        max_pending=max(p.pending_features, p.pending_labels),
        gate=GateSpec(threaded=False),
    )
    deps = local_deps(TestingSource([]), TestingSink([]), Path(tempfile.mkdtemp(prefix="bench-snapshot-")))
    install_champion(config, deps)
    ctx = TrainContext(config, deps.registry, deps.promoter, deps.metrics, deps.clock, drain_on_eof=False)
    logic = TrainLogic(new_group_state(ctx), ctx)
    rng = np.random.default_rng(0)
    for _ in range(20):  # the fork candidate learns (the champion never does)
        x = rng.normal(size=(256, p.n_features))
        logic.lanes["fork"].submit(Job(0, x, (x[:, 0] > 0).astype(np.int64), np.zeros(256, dtype=np.int8)))
    logic.lanes["fork"].drain()
    join = logic.state.join
    xs = rng.normal(size=(p.pending_features, p.n_features)).tolist()
    for i, x in enumerate(xs):
        source = SourceRef("events", i % 8, i, 1_700_000_000_000 + i)
        join.add_features(f"event-{i:09d}", Pending(x, {"route": 0, "served": i % 2}, 1_000.0 + i * 1e-3, source))
    for i in range(p.pending_labels):
        raw = f'{{"id": "early-{i:09d}", "label": {i % 2}}}'.encode()
        join.add_label(Label(f"early-{i:09d}", i % 2, SourceRef("labels", i % 8, i), raw), 1_000.0)
    return logic


def _median_s(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def baseline_snapshot(state: GroupState) -> bytes:
    """The old way: deep-copy every object, then pickle every object (no custom state)."""
    join = state.join
    plain = {
        "state": {k: v for k, v in vars(state).items() if k != "join"},
        "join": {k: v for k, v in vars(join).items()},  # the same entries, pickled one by one
    }
    return pickle.dumps(copy.deepcopy(plain), protocol=pickle.HIGHEST_PROTOCOL)


def headwater_snapshot(logic: TrainLogic) -> bytes:
    return pickle.dumps(logic.take_snapshot(), protocol=pickle.HIGHEST_PROTOCOL)


def measure(p: Params) -> dict[str, Any]:
    logic = build_group(p)
    join = logic.state.join
    assert (join.pending_features, join.pending_labels) == (p.pending_features, p.pending_labels)
    base_s, base_blob = _median_s(lambda: baseline_snapshot(logic.state), p.repeat)
    hw_s, hw_blob = _median_s(lambda: headwater_snapshot(logic), p.repeat)
    assert isinstance(base_blob, bytes)
    assert isinstance(hw_blob, bytes)
    base_load_s, _ = _median_s(lambda: pickle.loads(base_blob), p.repeat)  # noqa: TID251  # bytes this run just made
    hw_load_s, restored = _median_s(lambda: pickle.loads(hw_blob), p.repeat)  # noqa: TID251  # bytes this run just made
    assert isinstance(restored, GroupState)
    assert restored.join.pending_features == p.pending_features  # the snapshot holds everything
    assert restored.join.pending_labels == p.pending_labels
    return {
        "baseline_snapshot_s": base_s,
        "headwater_snapshot_s": hw_s,
        "snapshot_speedup": base_s / hw_s,
        "baseline_bytes": len(base_blob),
        "headwater_bytes": len(hw_blob),
        "baseline_restore_s": base_load_s,
        "headwater_restore_s": hw_load_s,
    }


def write(p: Params, r: dict[str, Any]) -> None:
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "commit": git_commit()}
    ms = 1000.0
    lines = [
        "# Snapshot of a model group: Headwater vs deep-copy-and-pickle",
        "",
        f"Python {machine['python']}, {machine['cpus']} CPU(s), headwater commit {machine['commit']}. "
        f"Produced by `python -m bench.snapshot`; median of {p.repeat} runs each.",
        "",
        f"State: one `{p.learner}` model ({p.n_features} features) and a label join holding "
        f"{p.pending_features:,} waiting features and {p.pending_labels:,} early labels.",
        "",
        "| | headwater | baseline | baseline / headwater |",
        "|:---|---:|---:|---:|",
        f"| snapshot on the worker (ms) | {r['headwater_snapshot_s'] * ms:,.1f} | {r['baseline_snapshot_s'] * ms:,.1f} "
        f"| {r['snapshot_speedup']:.1f} |",
        f"| restore (ms) | {r['headwater_restore_s'] * ms:,.1f} | {r['baseline_restore_s'] * ms:,.1f} "
        f"| {r['baseline_restore_s'] / r['headwater_restore_s']:.1f} |",
        f"| size (MB) | {r['headwater_bytes'] / 1e6:.1f} | {r['baseline_bytes'] / 1e6:.1f} "
        f"| {r['baseline_bytes'] / r['headwater_bytes']:.2f} |",
        "",
        "Snapshot = what Bytewax's worker waits for at each epoch end: making the copy (`TrainLogic.snapshot()`) "
        "and pickling it. Baseline = `copy.deepcopy` of the same objects, then `pickle.dumps`.",
        "",
    ]
    write_results(p.out_dir, "snapshot", {"params": params_of(p), "results": r, "machine": machine}, "\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    p = parse_args(argv)
    r = measure(p)
    write(p, r)
    print((p.out_dir / "snapshot.md").read_text())


if __name__ == "__main__":
    main()
