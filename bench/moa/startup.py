"""Part 3 of `bench.moa`: start-up time and peak memory of fresh ``python -c`` processes that import
the learners, build River's and MOA's learners (the JVM starts in the process), learn a few thousand
events, or run the daemon's start-up check; medians of ``--startup-reps`` interleaved repetitions.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.broker import BenchError
from bench.moa import Params
from bench.report import REPO
from bench.streams import Stream

log = logging.getLogger("bench.moa")

CHILD = """
import json, time
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
NAMES = {names!r}
{build}
t2 = time.perf_counter()
{learn}
t3 = time.perf_counter()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({{"import_s": t1 - t0, "build_s": t2 - t1, "learn_s": t3 - t2,
                  "max_rss_mib": int(status["VmHWM"].split()[0]) / 1024}}))
"""
LEARN = """
import numpy as np
data = np.load({path!r})
x, y = data["x"], data["y"]
for at in range(0, len(y), 100):
    learner.predict_proba(x[at : at + 100])
    learner.learn(x[at : at + 100], y[at : at + 100])
"""
LEARNERS_IMPORT = "from learners import LearnerSpec, RiverLearner, build_learner"
RIVER_ARF = "from river import forest\nlearner = RiverLearner(forest.ARFClassifier(n_models=10, seed=0), 10, 2, NAMES)"
MOA_ARF = "learner = build_learner(LearnerSpec('moa-arf', {'ensemble_size': 10}, 0), n_features=10, n_classes=2, feature_names=NAMES)"  # noqa: E501
DAEMON_IMPORT = "from daemon.config import load_settings\nfrom daemon.runner import check_learner"
CHECK = "check_learner(load_settings(None, schema={{'features': NAMES, 'classes': [0, 1]}}, model={model!r}))"
STARTUP_CASES: dict[str, tuple[str, str, bool]] = {  # name: imports, build, learn the events
    "import learners": (LEARNERS_IMPORT, "pass", False),
    "build river-logreg": (
        LEARNERS_IMPORT,
        "learner = build_learner(LearnerSpec('river-logreg', {}, 0), n_features=10, n_classes=2, feature_names=NAMES)",
        False,
    ),
    "build River ARF(10)": (LEARNERS_IMPORT, RIVER_ARF, False),
    "build moa-arf(10)": (LEARNERS_IMPORT, MOA_ARF, False),
    "River ARF(10) + events": (LEARNERS_IMPORT, RIVER_ARF, True),
    "moa-arf(10) + events": (LEARNERS_IMPORT, MOA_ARF, True),
    "daemon check, river-logreg": (
        DAEMON_IMPORT,
        CHECK.format(model={"learner": "river-logreg", "candidates": [{"name": "fork"}]}),
        False,
    ),
    "daemon check, moa-arf(10)": (
        DAEMON_IMPORT,
        CHECK.format(model={"learner": "moa-arf", "params": {"ensemble_size": 10}, "candidates": [{"name": "fork"}]}),
        False,
    ),
}


def child(code: str, timeout_s: float) -> dict[str, Any]:
    """Run ``python -c code`` from the repository root: wall time from spawn to exit, and what the
    child printed: its phases and its peak resident memory (``VmHWM``, read by the child at its end).
    Not ``ru_maxrss`` from ``wait4``: on Linux it keeps the high-water mark from before ``exec``, the
    benchmark's own memory as the forked child shared it."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout_s, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        msg = f"a start-up child ran past {timeout_s:g} s"
        raise BenchError(msg) from exc
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        msg = f"a start-up child failed ({done.returncode}): {done.stderr[-2000:]}"
        raise BenchError(msg)
    return {"wall_s": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def startup(p: Params, s: Stream) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="headwater-bench-moa-") as tmp:
        data = Path(tmp) / "events.npz"
        np.savez(data, x=s.x[: p.startup_events], y=s.y[: p.startup_events])
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in STARTUP_CASES}
        for rep in range(p.startup_reps):
            for name, (imports, build, learn) in STARTUP_CASES.items():
                code = CHILD.format(imports=imports, names=s.features, build=build,
                                    learn=LEARN.format(path=str(data)) if learn else "")  # fmt: skip
                runs[name].append(child(code, p.timeout_s))
                log.info("startup %d: %s: %.2f s, %.0f MiB", rep + 1, name, runs[name][-1]["wall_s"],
                         runs[name][-1]["max_rss_mib"])  # fmt: skip
    medians = {
        name: {key: round(statistics.median(r[key] for r in rs), 3) for key in rs[0]} for name, rs in runs.items()
    }
    return {"reps": p.startup_reps, "events": p.startup_events, "median": medians, "runs": runs,
            "capymoa_jvm_args": os.environ.get("CAPYMOA_JVM_ARGS", "-Xmx8g -Xss10M (CapyMOA's default)")}  # fmt: skip
