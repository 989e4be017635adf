"""One (learner, stream) pair of `bench.parity`: the Headwater side and the alone sides on the same
stream, scored by the same code (`scores`), and the gaps between them in points.

Scores, on the label the stream delivers: **overall** accuracy from event 0; the **worst window**, the
lowest accuracy of any ``window`` consecutive events starting at or after ``warmup``; **recovery**
after each abrupt change ``d`` (next change or end ``e``): with ``L`` the accuracy over the second
half of ``[d, e)``, the smallest ``k`` such that the 1,000 events from ``d + k`` are within 2 points
of ``L`` (None: never).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.alone import capymoa_alone, jit_warmup, learner_alone, river_pvs
from bench.parity.served import Params, headwater
from bench.streams import LEARNER_SPECS, MOA_CLASSES, Stream

log = logging.getLogger("bench.parity")

RECOVERY_WINDOW = 1000
RECOVERY_MARGIN = 0.02


def scores(correct: NDArray[np.bool_], changes: list[int], window: int, warmup: int) -> dict[str, Any]:
    """Overall accuracy, the worst window after the warm-up, and the recovery after each change."""
    n = len(correct)
    cum = np.concatenate([[0.0], np.cumsum(correct, dtype=np.float64)])

    def acc(a: int, b: int) -> float:
        return float((cum[b] - cum[a]) / (b - a))

    worst = None
    if n - window >= warmup:
        starts = np.arange(warmup, n - window + 1)
        sums = cum[starts + window] - cum[starts]
        i = int(np.argmin(sums))
        worst = {"accuracy": float(sums[i] / window), "start": int(starts[i])}
    recovery = []
    bounds = [*changes, n]
    for d, e in zip(changes, bounds[1:], strict=True):
        level = acc(d + (e - d) // 2, e)
        k = next(
            (
                k
                for k in range(0, e - d - RECOVERY_WINDOW + 1)
                if acc(d + k, d + k + RECOVERY_WINDOW) >= level - RECOVERY_MARGIN
            ),
            None,
        )
        recovery.append({"change": d, "settled": round(level, 4), "events": k})
    curve = [round(acc(a, min(a + 1000, n)), 4) for a in range(0, n, 1000)]  # accuracy per 1,000 events
    after = acc(warmup, n) if warmup < n else None
    return {"overall": float(cum[-1] / n), "after_warmup": after, "worst_window": worst, "recovery": recovery,
            "curve": curve}  # fmt: skip


def pts(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(100 * (a - b), 2)


def run_pair(p: Params, name: str, s: Stream) -> dict[str, Any]:
    spec = LEARNER_SPECS[name]
    jit_warmup(spec, s, p.seed)
    log.info("%s on %s: Headwater, %d events at %.0f/s", name, s.name, len(s.y), p.rate)
    hw = headwater(p, spec, s)
    log.info("%s on %s: alone", name, s.name)
    alone_correct, alone_s, alone_at_label = learner_alone(spec, s, p.delay)
    pvs = river_pvs(spec, s, p.delay)
    if name in MOA_CLASSES:
        log.info("%s on %s: CapyMOA alone", name, s.name)
    capy = capymoa_alone(spec, s, p.delay)
    a = scores(alone_correct, s.changes, p.window, p.warmup)
    h = scores(hw.pop("correct"), s.changes, p.window, p.warmup)
    fork = hw["lanes"].get("fork", {})
    aw, hw_w = a["worst_window"], h["worst_window"]
    out = {
        "learner": name,
        "stream": s.name,
        "alone": a | {"seconds": round(alone_s, 1), "scored_at_label": alone_at_label},
        "river_pvs": None if pvs is None else scores(pvs, s.changes, p.window, p.warmup),
        "capymoa_alone": None,
        "headwater_served": h,
        "lane_prequential_overall": fork.get("accuracy"),
        "gap_served_overall_pts": pts(h["overall"], a["overall"]),
        "gap_lane_overall_pts": pts(fork.get("accuracy"), a["overall"]),
        "gap_lane_at_label_pts": pts(fork.get("accuracy"), alone_at_label),
        "gap_served_worst_pts": pts(hw_w and hw_w["accuracy"], aw and aw["accuracy"]),
        "headwater": hw,
    }
    if capy is not None:  # MOA: the reference is CapyMOA's classifier itself
        c_correct, c_s, c_at_label = capy
        c = scores(c_correct, s.changes, p.window, p.warmup)
        cw = c["worst_window"]
        out |= {
            "capymoa_alone": c | {"seconds": round(c_s, 1), "scored_at_label": c_at_label},
            "gap_alone_vs_capymoa_pts": pts(a["overall"], c["overall"]),  # the wrapper alone against CapyMOA
            "gap_served_vs_capymoa_overall_pts": pts(h["overall"], c["overall"]),
            "gap_served_vs_capymoa_worst_pts": pts(hw_w and hw_w["accuracy"], cw and cw["accuracy"]),
            "gap_lane_vs_capymoa_at_label_pts": pts(fork.get("accuracy"), c_at_label),
        }
    return out
