"""Label quarantine, as the train step drives it (`labels.quarantine`): suspect labels are held
back before any lane learns them (the decision is `evaluators.LabelQuarantine`'s).

`screen` takes each job the served batches make, before it is handed to the lanes, and answers
which jobs go to the lanes now:

- ``learn``: the job itself;
- ``engage`` / ``hold``: none — the job is held (`GroupState.held`), sent to the quarantine topic
  with its offsets (a `QuarantineRecord`), and neither learned nor scored: no lane sees it, so
  the vote's weights, the trials and the change detector do not count it. While held, *probes*
  (copies of the candidates as they were, a vote's members among them; the champion when there
  is none) learn the held labels in order, in pieces each scored before it is learned, beside a
  frozen twin of each (the same state, learning nothing), to tell a change in the data (learning
  the labels makes a probe better than its twin, or a twin already beats serving on them: release,
  at the first held job already when the change is plain) from labels that teach nothing (no
  probe gains: hold);
- ``clear``: the job; what was held is dropped (it stays on the quarantine topic);
- ``release``: what was held, merged into one job in the order it came (a new sequence number),
  then the job — by the probe, after ``max_hold`` examples, or by an operator (`release`).

Nothing of a held job reaches the registry's lineage: no version learned it. The quarantine's
state (the signal's reference, what is held) is the group's, snapshotted and recovered; the
probes are not (a restart copies the candidates again).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from dataflows.jobs import Job
from dataflows.ports import OffsetRange
from dataflows.records import QuarantineRecord
from dataflows.train.state import GroupRuntime, TrainOutput
from dataflows.train.trials import CHAMPION_SLOT
from evaluators.quarantine import Action, LabelQuarantine, Ruling
from learners import Learner

__all__ = ["engaged", "release", "screen", "start"]

log = logging.getLogger("headwater")


def screen(rt: GroupRuntime, job: Job | None, now_ms: int) -> tuple[list[Job], list[TrainOutput]]:
    """The jobs to hand to the lanes now for ``job``, and what goes to the quarantine topic."""
    spec, state = rt.ctx.config.quarantine, rt.state
    if job is None or spec is None or not len(job):
        return ([] if job is None else [job]), []
    q = state.quarantine
    if q is None:
        q = state.quarantine = spec.build(len(state.classes))
    correct = _served_right(job)
    ruling = q.judge(correct, job.y)
    if ruling.action is Action.LEARN:
        return [job], []
    if ruling.action is Action.CLEAR:
        held = _take_held(rt)
        log.info("group %s: quarantine %s; %d held labels dropped", state.name, ruling.reason, held)
        return [job], _said(rt, "cleared", ruling.reason, held, (), now_ms)
    if ruling.action is Action.RELEASE:
        state.held = (*state.held, job)
        return _released(rt, ruling.reason, now_ms)
    # engage or hold: the job waits, the probe learns it
    out: list[TrainOutput] = []
    if ruling.action is Action.ENGAGE:
        log.warning("group %s: labels quarantined: %s", state.name, ruling.reason)
        rt.quarantine_probes = _probes_of(rt) if spec.probe else []
    state.held = (*state.held, job)
    action = "engaged" if ruling.action is Action.ENGAGE else "held"
    out.extend(_said(rt, action, ruling.reason, len(job), job.ranges, now_ms))
    rt.ctx.metrics.quarantined(state.name, held=q.held)
    probed = _probe(rt, q, job)
    if probed is not None and probed.action is Action.RELEASE:
        jobs, released = _released(rt, probed.reason, now_ms)
        return jobs, [*out, *released]
    return [], out


def release(rt: GroupRuntime, *, learn: bool, why: str, now_ms: int) -> tuple[list[Job], list[TrainOutput]]:
    """An operator's release: what is held is learned (``learn``) or dropped; nothing if none is."""
    q = rt.state.quarantine
    if q is None or not q.engaged:
        return [], []
    q.release()
    if learn:
        return _released(rt, why, now_ms)
    held = _take_held(rt)
    return [], _said(rt, "cleared", why, held, (), now_ms)


def start(rt: GroupRuntime) -> None:
    """As the step starts: the metrics say what is held (a resumed quarantine goes on; its probes
    are copied again from the candidates as they are now)."""
    if rt.ctx.config.quarantine is None:
        return
    rt.ctx.metrics.quarantined(rt.state.name, held=sum(len(j) for j in rt.state.held))
    if engaged(rt) and rt.ctx.config.quarantine.probe:
        rt.quarantine_probes = _probes_of(rt)


def engaged(rt: GroupRuntime) -> bool:
    q = rt.state.quarantine
    return q is not None and q.engaged


def _served_right(job: Job) -> npt.NDArray[np.bool_]:
    """Whether serving got each example right; one it did not serve (-1, or no record) counts as right."""
    if job.served is None or len(job.served) != len(job.y):
        return np.ones(len(job.y), dtype=bool)
    right: npt.NDArray[np.bool_] = (job.served == job.y) | (job.served < 0)
    return right


def _released(rt: GroupRuntime, why: str, now_ms: int) -> tuple[list[Job], list[TrainOutput]]:
    state = rt.state
    held = list(state.held)
    n = _take_held(rt)
    log.warning("group %s: %d quarantined labels released: %s", state.name, n, why)
    if not held:
        return [], _said(rt, "released", why, 0, (), now_ms)
    state.seq += 1
    merged = Job(
        state.seq, np.concatenate([j.x for j in held]), np.concatenate([j.y for j in held]),
        np.concatenate([j.routes for j in held]), tuple(sorted({r for j in held for r in j.ranges})),
        served=np.concatenate([_served_of(j) for j in held]),
    )  # fmt: skip
    return [merged], _said(rt, "released", why, n, (), now_ms)


def _served_of(job: Job) -> npt.NDArray[np.int64]:
    return job.served if job.served is not None and len(job.served) == len(job.y) else np.full(len(job.y), -1)


def _take_held(rt: GroupRuntime) -> int:
    n = sum(len(j) for j in rt.state.held)
    rt.state.held = ()
    rt.quarantine_probes = []
    rt.ctx.metrics.quarantined(rt.state.name, held=0)
    return n


def _probes_of(rt: GroupRuntime) -> list[tuple[Learner, Learner]]:
    """A probe and its frozen twin per model that learns — the candidates (a vote's members among
    them); the champion's model when there is none: two copies of one state."""
    names = [n for n, slot in rt.state.slots.items() if slot.spec is not None] or [CHAMPION_SLOT]
    probes = []
    for name in names:
        try:
            probe = rt.lanes[name].frozen()
            probes.append((probe, probe.clone(include_state=True)))
        except Exception:  # a lane that cannot hand a copy: the others probe
            log.warning("group %s: %s could not be copied to probe the quarantine", rt.state.name, name, exc_info=True)
    return probes


CHUNKS = 8  # a held job is learned by the probes in this many pieces, each scored before it is learned


def _probe(rt: GroupRuntime, q: LabelQuarantine, job: Job) -> Ruling | None:
    """Each probe learns the held job in pieces, each scored first, beside its twin's answers; a
    probe that fails is dropped. The first held job already says whether learning it helps."""
    pairs, kept = [], []
    pieces = np.array_split(np.arange(len(job)), max(1, min(CHUNKS, len(job) // 16)))
    for probe, twin in rt.quarantine_probes:
        try:
            frozen = np.argmax(twin.predict_proba(job.x), axis=1) == job.y
            learning = np.zeros(len(job), dtype=bool)
            for rows in pieces:
                learning[rows] = np.argmax(probe.predict_proba(job.x[rows]), axis=1) == job.y[rows]
                probe.learn(job.x[rows], job.y[rows])
        except Exception:
            log.warning("group %s: a probe of the quarantine failed; it is dropped", rt.state.name, exc_info=True)
            continue
        pairs.append((frozen, learning))
        kept.append((probe, twin))
    rt.quarantine_probes = kept
    return q.probed(pairs, served=_served_right(job)) if pairs else None


def _said(
    rt: GroupRuntime, action: str, reason: str, examples: int, ranges: tuple[OffsetRange, ...], now_ms: int
) -> list[TrainOutput]:
    if action != "held":
        rt.ctx.metrics.quarantined(rt.state.name, action=action)
    offsets = [(r.topic, r.partition, r.first, r.last) for r in ranges]
    return [QuarantineRecord(group=rt.state.name, action=action, reason=reason, examples=examples, offsets=offsets,
                             ts_ms=now_ms)]  # fmt: skip
