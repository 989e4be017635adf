"""Examples and evidence: a served micro-batch turned into the job every lane runs, and the lanes'
results turned into reports, lineage, paired scores for each trial, and verdict records.

Examples. A served batch carries its events (with the route that served each, and the class it was
given) and delayed labels. Inline labels make examples at once; an unlabelled event's features wait
in the join (`dataflows.labels.LabelJoin`) for their label, and a label for its event (records from
different partitions come in no fixed order). A label that outlives the window, or is pushed out of
a full join, is dead-lettered (`label_unmatched`: `expired`, `drained`). `next_job` makes the job;
it also carries the input offsets it covers, as runs per partition (`ranges`): the lineage of every
version that learns it.

Evidence. Every lane scores the same job before it learns it (prequential). `gather` collects what
the lanes finished: a `ModelReport` per model and job, the offsets each version learned (written to
the registry by `GroupRuntime.flush_lineage`), and the scores waiting to be paired
(`trials.PairingBuffer`); the frozen champion's correctness also goes through a change detector
(`watch`: a change in the data starts every trial over). `feed` hands each trial its pairs,
`verdicts` reads the trials and records the verdicts whose phase changed.
"""

from __future__ import annotations

import logging

import numpy as np

from dataflows.jobs import Job, LaneResult
from dataflows.labels import Pending
from dataflows.lanes import Lane
from dataflows.ports import OffsetRange
from dataflows.records import DeadLetter, DeadLetterReason, Label, ModelReport, SourceRef, VerdictRecord
from dataflows.serve import ServedBatch
from dataflows.train import bandit, restart, vote
from dataflows.train.state import GroupRuntime, Slot, TrainOutput
from dataflows.train.trials import CHAMPION_SLOT, STANDBY_SLOT, canary_part, is_live_fork
from evaluators import Phase, Verdict

__all__ = [
    "drained",
    "expired",
    "feed",
    "gather",
    "next_job",
    "ranges",
    "report",
    "unmatched",
    "verdict_record",
    "verdicts",
    "watch",
]

log = logging.getLogger("headwater")


def expired(rt: GroupRuntime, now: float) -> list[DeadLetter]:
    """Labels that waited longer than the window for their event, dead-lettered."""
    return [unmatched(label) for label in rt.state.join.expire(now)]


def drained(rt: GroupRuntime) -> list[DeadLetter]:
    """Every label still waiting (the input is over), dead-lettered."""
    return [unmatched(label) for label in rt.state.join.drain()]


def next_job(rt: GroupRuntime, served: ServedBatch, now: float) -> tuple[Job | None, list[DeadLetter]]:
    """The batch's labelled examples as the next job (None: the batch held no record), and the labels
    the join pushed out, dead-lettered."""
    state, join = rt.state, rt.state.join
    rows_x: list[list[float]] = []
    rows_y: list[int] = []
    rows_route: list[int] = []
    rows_served: list[int] = []
    sources: list[SourceRef] = [e.source for e in served.events] + [label.source for label in served.labels]
    for e, route, predicted in zip(served.events, served.routes, served.predicted, strict=True):
        if e.label is not None:
            rows_x.append(e.x)
            rows_y.append(e.label)
            rows_route.append(route)
            rows_served.append(predicted)
        elif rt.ctx.delayed_labels:
            early = join.add_features(e.id, Pending(e.x, {"route": route, "served": predicted}, now, e.source))
            if early is not None:
                rows_x.append(e.x)
                rows_y.append(early.label)
                rows_route.append(route)
                rows_served.append(predicted)
    evicted: list[Label] = []
    for label in served.labels:
        pending, dropped = join.add_label(label, now)
        evicted.extend(dropped)
        if pending is not None:
            rows_x.append(pending.x)
            rows_y.append(label.label)
            rows_route.append(pending.preds.get("route", 0))
            rows_served.append(pending.preds.get("served", -1))
            sources.append(pending.source)
    if not sources:
        return None, [unmatched(label) for label in evicted]
    state.seq += 1
    n_features = len(state.features)
    x = np.asarray(rows_x, dtype=np.float64).reshape(-1, n_features)
    y = np.asarray(rows_y, dtype=np.int64)
    if state.reservoir is not None and len(y):
        state.reservoir.add(x, y)
    routes, served_as = np.asarray(rows_route, dtype=np.int8), np.asarray(rows_served, dtype=np.int64)
    job = Job(state.seq, x, y, routes, ranges(sources), served=served_as)
    return job, [unmatched(label) for label in evicted]


def ranges(sources: list[SourceRef]) -> tuple[OffsetRange, ...]:
    """The offsets of ``sources`` as contiguous runs per topic partition: a delayed label's event,
    read long before, is a run of its own — not a stretch over everything in between."""
    offsets: dict[tuple[str, int], list[int]] = {}
    for s in sources:
        offsets.setdefault((s.topic, s.partition), []).append(s.offset)
    runs: list[OffsetRange] = []
    for (topic, partition), values in offsets.items():
        ordered = sorted(set(values))
        first = last = ordered[0]
        for offset in ordered[1:]:
            if offset > last + 1:
                runs.append(OffsetRange(topic, partition, first, last))
                first = offset
            last = offset
        runs.append(OffsetRange(topic, partition, first, last))
    return tuple(sorted(runs))


def unmatched(label: Label) -> DeadLetter:
    detail = (
        f"no unlabelled event with id {label.id!r} was waiting for it within the label window "
        "(the event never came, came earlier than the window, or was already labelled)"
    )
    return DeadLetter(DeadLetterReason.LABEL_UNMATCHED, detail, label.source, label.original)


def gather(rt: GroupRuntime, now_ms: int) -> list[TrainOutput]:
    """Collect every lane's results: a report each, the learning it adds to the lineage, its
    scores waiting in the pairing buffer, and the champion's through the change detector."""
    state = rt.state
    out: list[TrainOutput] = []
    for name, lane in list(rt.lanes.items()):  # a drift may start or drop the restart lane (`watch`)
        if rt.lanes.get(name) is not lane:
            continue
        for result in lane.drain():
            out.extend(report(rt, state.slots[name], lane, result, now_ms))
            state.pairing.add(result)
            vote.observe(rt, name, result)
            bandit.observe(rt, name, result)
            if name == CHAMPION_SLOT and not result.skipped and len(result.correct):
                out.extend(watch(rt, result, now_ms))
    return out


def feed(rt: GroupRuntime) -> None:
    """Hand each trial the paired evidence ready now: a canary only the examples it served; a
    candidate refused not long ago none until its wait is over (a live fork does gather it)."""
    state = rt.state
    versions = {name: lane.version for name, lane in rt.lanes.items()}
    oldest = state.seq - 4 * rt.ctx.config.gate.max_lag_batches
    gated = set(state.bandit.candidates) if state.bandit is not None else set()  # the bandit is their trial
    for name, paired, routes in state.pairing.pairs(versions, oldest):
        slot = state.slots.get(name)
        if slot is None or slot.trial is None or name in gated:
            continue
        if slot.trial.wait > 0:  # refused not long ago: it learns on before it is judged again
            slot.trial.wait = max(0, slot.trial.wait - len(paired))
            if not is_live_fork(rt.ctx.config.gate, slot.spec):
                continue
        if slot.trial.kind == "canary":
            paired = canary_part(paired, routes)
        if len(paired):
            slot.trial.evaluator.update(paired)


def report(rt: GroupRuntime, slot: Slot, lane: Lane, result: LaneResult, now_ms: int) -> list[TrainOutput]:
    """Score ``result`` into its slot, add what it learned to the lineage, and report it (nothing
    for a job with no labelled example, no error and no skip)."""
    state, ctx = rt.state, rt.ctx
    n = len(result.correct)
    if n:
        slot.score.update_hits(result.correct > 0.5, proba_true=result.proba_true)
    if result.ranges or result.learned:
        runs, samples = rt.lineage.get(result.version, ((), 0))
        rt.lineage[result.version] = (runs + result.ranges, samples + result.learned)
    ctx.metrics.learned(state.name, slot.name, result.learned, result.learn_ms / 1000, lane.backlog)
    if not (n or result.error or result.skipped):
        return []
    snap = slot.score.snapshot()
    join = state.join
    offsets: dict[str, list[int]] = {}  # first and last offset per partition (the registry keeps the runs)
    for r in result.ranges:
        span = offsets.setdefault(f"{r.topic}/{r.partition}", [r.first, r.last])
        span[0], span[1] = min(span[0], r.first), max(span[1], r.last)
    model_report = ModelReport(
        group=state.name, model=slot.name, version=result.version, role=slot.role, ts_ms=now_ms,
        batch=result.seq, n_labelled=n, n_learned=result.learned, n_correct=int(result.correct.sum()),
        accuracy=snap.accuracy, rolling_accuracy=snap.rolling_accuracy, rolling_log_loss=snap.rolling_log_loss,
        learn_ms=round(result.learn_ms, 3), lag_batches=lane.backlog, skipped_batches_total=lane.skipped_total,
        offsets=offsets, pending_features=join.pending_features, pending_labels=join.pending_labels,
        features_expired_total=join.features_expired_total, labels_unmatched_total=join.labels_unmatched_total,
        error=result.error,
    )  # fmt: skip
    ctx.metrics.reported(model_report)
    return [model_report]


def verdicts(rt: GroupRuntime, now_ms: int) -> list[TrainOutput]:
    """Read every trial; record and publish the verdicts whose phase changed."""
    out: list[TrainOutput] = []
    for slot in rt.state.slots.values():
        trial = slot.trial
        if trial is None or (trial.wait > 0 and is_live_fork(rt.ctx.config.gate, slot.spec)):
            continue  # judged once its wait is over, on all the evidence gathered since its refusal
        verdict = trial.evaluator.verdict()
        trial.verdict = verdict
        if verdict.phase is not trial.phase:
            trial.phase = verdict.phase
            out.append(verdict_record(rt, slot, trial.kind, verdict, now_ms))
    return out


def verdict_record(
    rt: GroupRuntime, slot: Slot, kind: str, verdict: Verdict, now_ms: int, *, version: str | None = None
) -> VerdictRecord:
    """Record ``verdict`` in the registry, as the model-events topic carries it (a probation's and a
    drift's are the champion's)."""
    if version is None:
        # A probation judges the champion (against the standby): the verdict is the champion's.
        on = CHAMPION_SLOT if kind == "probation" else slot.name
        version = rt.lanes[on].version
    evidence = dict(verdict.evidence)
    if kind == "probation" and STANDBY_SLOT in rt.lanes:
        evidence["standby"] = rt.lanes[STANDBY_SLOT].version
    rt.ctx.registry.record_verdict(version, kind, verdict.phase.value, verdict.reason, evidence, now_ms)
    model = CHAMPION_SLOT if kind == "probation" else slot.name
    return VerdictRecord(
        group=rt.state.name, model=model, version=version, evaluator=kind, phase=verdict.phase.value,
        reason=verdict.reason, evidence=evidence, ts_ms=now_ms,
    )  # fmt: skip


def watch(rt: GroupRuntime, result: LaneResult, now_ms: int) -> list[TrainOutput]:
    """The frozen champion's correctness on fresh labels: when its mean moves, the data changed
    (a drift, or a burst of wrong labels). Evidence gathered before the change says nothing
    about the candidates after it: their trials start over (the probation goes on). When the
    champion got worse, a candidate refused against it no longer waits out its refusal: that
    evidence was gathered against a champion that is not what it was (on an abrupt change a
    frozen champion can serve a stale concept for the whole wait). When it got better (a burst
    of wrong labels ending), a refused candidate waits on: it may have learned the burst."""
    state = rt.state
    if result.version != rt.lanes[CHAMPION_SLOT].version:
        return []
    state.change.update(result.correct)
    change = state.change.last
    if not state.change.changed or change is None:
        return []
    reason = (
        f"the champion's accuracy on fresh labels moved from {change.before:.3f} to {change.after:.3f} "
        f"(ADWIN, delta {state.change.delta}): the data changed, every candidate's trial starts over"
    )
    dropped = change.after < change.before
    if dropped:
        reason += "; a refused candidate is judged again at once"
    log.warning("group %s: %s", state.name, reason)
    rt.new_trials(keep_waits=not dropped)
    verdict = Verdict(Phase.FAILED, reason, {"before": change.before, "after": change.after, "n": change.n})
    out: list[TrainOutput] = [verdict_record(rt, state.slots[CHAMPION_SLOT], "drift", verdict, now_ms)]
    if dropped and rt.ctx.config.gate.restart_on_drift:
        out.extend(restart.start(rt, now_ms))
    return out
