"""Recovery state written by an older Headwater, carried forward instead of refused.

A store is only refused when its state cannot be used (another group, features or classes). A
snapshot of an older *shape* is migrated as it is resumed:

* format 1 (one model that served and learned at once, `dataflows.group.GroupState`): the model
  that served before the upgrade is registered as a version of its own (with the offsets it had
  learned from) and promoted, so it goes on serving; candidates are forked from it as for a new
  group; the label join (waiting features and early labels) is kept as it was.
"""

from __future__ import annotations

import logging
from typing import Any

from dataflows import group as format1
from dataflows.ports import OffsetRange
from dataflows.train.state import STATE_FORMAT, GroupState, TrainContext, decision_record, new_group_state

__all__ = ["MIGRATES_FROM", "migrate"]

log = logging.getLogger("headwater")

MIGRATES_FROM = (1,)  # state formats this Headwater can carry forward to STATE_FORMAT


def migrate(resumed: Any, ctx: TrainContext) -> GroupState:
    """Today's state from an older snapshot (``resumed``), or a ValueError naming its format."""
    found = vars(resumed).get("format")
    if found == 1 and isinstance(resumed, format1.GroupState):
        return _from_format1(resumed, ctx)
    name = getattr(resumed, "name", "?")
    msg = (
        f"group {name!r}: snapshot format {found}; this Headwater reads format {STATE_FORMAT} "
        f"and migrates {list(MIGRATES_FROM)}"
    )
    raise ValueError(msg)


def _from_format1(old: format1.GroupState, ctx: TrainContext) -> GroupState:
    group, registry, promoter = old.name, ctx.registry, ctx.promoter
    now_ms = int(ctx.clock() * 1000)
    slot = old.models[old.champion]
    learner = slot.learner.clone(include_state=True)
    info = registry.create_version(
        group, name="champion", parent=None, learner=learner,
        config={"migrated_from": "recovery state format 1", "model": slot.name, "batches_learned": slot.version},
        ts_ms=now_ms,
    )  # fmt: skip
    ranges = [_range(tp, lo, hi) for tp, (lo, hi) in slot.lineage.items()]
    registry.record_learning(info.id, ranges, slot.score.snapshot().n)
    serving = promoter.serving(group)
    previous = serving[0] if serving is not None else None
    reason = f"migrated from a format-1 recovery store: {info.id} is the model that served before the upgrade"
    if previous is None:
        decision = promoter.install(group, version=info.id, learner=learner, reason=reason, ts_ms=now_ms)
        decisions = [] if decision is None else [decision]
    else:
        decisions = [promoter.promote(group, version=info.id, learner=learner, previous=previous, reason=reason,
                                      evidence={}, ts_ms=now_ms)]  # fmt: skip
        why = f"replaced by {info.id}, migrated from the recovery store"
        decisions.append(promoter.retire(group, version=previous, reason=why, evidence={}, ts_ms=now_ms))
    log.warning("group %s: %s", group, reason)
    state = new_group_state(ctx)  # candidates fork from the migrated champion, now serving
    state.join = old.join
    state.slots["champion"].score = slot.score
    state.outbox.extend(decision_record(d) for d in decisions)
    return state


def _range(topic_partition: str, first: int, last: int) -> OffsetRange:
    topic, _, partition = topic_partition.rpartition("/")
    return OffsetRange(topic, int(partition), first, last)
