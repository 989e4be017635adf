"""Part 1 of `bench.moa`: predict + learn events/s of ``moa-hat`` and ``moa-arf`` called three ways
(`WAYS`: per-event JPype calls, the batched bridge, CapyMOA's API), each on a fresh learner with the
same seed, in alternating order after a JIT warm-up; and whether the three ways leave the same model.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict
from typing import Any

import numpy as np

from bench.alone import batched, capymoa_api, capymoa_classifier, moa_learner, per_event
from bench.moa import PROBE_EVENTS, WARM_EVENTS, Params
from bench.report import ratio
from bench.streams import LEARNER_SPECS, FloatArray, IntArray, Stream
from learners import LearnerSpec
from learners.moa import MoaLearner

log = logging.getLogger("bench.moa")

CALL_SPECS = {"moa-hat": LearnerSpec("moa-hat", {}, 0), "moa-arf": LEARNER_SPECS["moa-arf"]}
CALL_EVENTS_FACTOR = {"moa-hat": 5, "moa-arf": 1}  # a single tree is ~15x faster: more events, same precision
WAYS = ("per-event JPype", "batched bridge", "CapyMOA API")


def one_way(way: str, spec: LearnerSpec, s: Stream, x: FloatArray, y: IntArray, batch: int) -> tuple[float, Any]:
    """Predict + learn ``x, y`` one way on a fresh learner: the seconds it took, and the learner's
    probabilities on the probe events afterwards."""
    if way == "CapyMOA API":
        model = capymoa_classifier(spec, s.features, 2)
        t0 = time.perf_counter()
        capymoa_api(model, x, y)
        seconds = time.perf_counter() - t0
        learner = MoaLearner(model.moa_learner, len(s.features), 2, s.features)
    else:
        learner = moa_learner(spec, s)
        t0 = time.perf_counter()
        (per_event if way == "per-event JPype" else batched)(learner, x, y, batch)
        seconds = time.perf_counter() - t0
    return seconds, learner.predict_proba(s.x[-PROBE_EVENTS:])


def calls(p: Params, s: Stream, warm: Stream) -> dict[str, Any]:
    out: dict[str, Any] = {"batch": p.calls_batch, "rounds": p.calls_rounds, "learners": {}}
    for name, spec in CALL_SPECS.items():
        n = min(p.calls_events * CALL_EVENTS_FACTOR[name], len(s.y) - PROBE_EVENTS)
        x, y = s.x[:n], s.y[:n]
        log.info("calls: %s, JIT warm-up", name)
        for way in WAYS:
            one_way(way, spec, warm, warm.x[:WARM_EVENTS], warm.y[:WARM_EVENTS], p.calls_batch)
        rates: dict[str, list[float]] = {way: [] for way in WAYS}
        probes: dict[str, Any] = {}
        for r in range(p.calls_rounds):
            for way in WAYS if r % 2 == 0 else WAYS[::-1]:
                seconds, probe = one_way(way, spec, s, x, y, p.calls_batch)
                rates[way].append(round(n / seconds, 1))
                probes.setdefault(way, probe)
                log.info("calls: %s, %s: %.0f events/s", name, way, n / seconds)
        median = {way: statistics.median(v) for way, v in rates.items()}
        reference = probes["batched bridge"]
        out["learners"][name] = {
            "spec": asdict(spec),
            "events": n,
            "events_per_s": rates,
            "median_events_per_s": median,
            "batched_over_per_event": ratio(median["batched bridge"], median["per-event JPype"]),
            "batched_over_per_event_by_round": [
                ratio(b, e) for b, e in zip(rates["batched bridge"], rates["per-event JPype"], strict=True)
            ],
            "batched_over_capymoa_api": ratio(median["batched bridge"], median["CapyMOA API"]),
            "same_model_max_abs_diff": {
                way: float(np.max(np.abs(probe - reference))) for way, probe in probes.items() if probe is not reference
            },
        }
    return out
