"""Labelled examples: a served micro-batch and the label join, turned into the job every lane runs.

A served batch carries its events (with the route that served each, and the class it was given) and
delayed labels. Inline labels make examples at once; an unlabelled event's features wait in the
join (`dataflows.labels.LabelJoin`) for their label, and a label for its event (records from
different partitions come in no fixed order). A label that outlives the window, or is pushed out of
a full join, is dead-lettered (`label_unmatched`). The job also carries the input offsets it covers,
as runs per partition: the lineage of every version that learns it.
"""

from __future__ import annotations

import numpy as np

from dataflows.jobs import Job
from dataflows.labels import Pending
from dataflows.ports import OffsetRange
from dataflows.records import DeadLetter, DeadLetterReason, Label, SourceRef
from dataflows.serve import ServedBatch
from dataflows.train.state import GroupRuntime

__all__ = ["drained", "expired", "next_job", "ranges", "unmatched"]


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
    sources: list[SourceRef] = [e.source for e in served.events] + [label.source for label in served.labels]
    for e, route, predicted in zip(served.events, served.routes, served.predicted, strict=True):
        if e.label is not None:
            rows_x.append(e.x)
            rows_y.append(e.label)
            rows_route.append(route)
        elif rt.ctx.delayed_labels:
            early = join.add_features(e.id, Pending(e.x, {"route": route, "served": predicted}, now, e.source))
            if early is not None:
                rows_x.append(e.x)
                rows_y.append(early.label)
                rows_route.append(route)
    evicted: list[Label] = []
    for label in served.labels:
        pending, dropped = join.add_label(label, now)
        evicted.extend(dropped)
        if pending is not None:
            rows_x.append(pending.x)
            rows_y.append(label.label)
            rows_route.append(pending.preds.get("route", 0))
            sources.append(pending.source)
    if not sources:
        return None, [unmatched(label) for label in evicted]
    state.seq += 1
    n_features = len(state.features)
    x = np.asarray(rows_x, dtype=np.float64).reshape(-1, n_features)
    y = np.asarray(rows_y, dtype=np.int64)
    if state.reservoir is not None and len(y):
        state.reservoir.add(x, y)
    job = Job(state.seq, x, y, np.asarray(rows_route, dtype=np.int8), ranges(sources))
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
