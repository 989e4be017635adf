"""Offset lineage: which stretches of which partitions a version learned from.

A version learns micro-batch after micro-batch; each adds the offsets it read. Kept merged, the
ranges stay a handful per partition however long the version lives, and a gap — a stretch it did not
learn, because the group skipped it or was not running — stays visible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain, pairwise

from daemon.registry.errors import RegistryError
from dataflows.ports import OffsetRange

__all__ = ["gaps", "merge_ranges"]


def merge_ranges(existing: Sequence[OffsetRange], new: Iterable[OffsetRange]) -> list[OffsetRange]:
    """Join overlapping and adjacent ranges of each partition; sorted by topic, partition, first.

    >>> r = lambda p, a, b: OffsetRange("events", p, a, b)
    >>> merged = merge_ranges([r(0, 0, 9)], [r(0, 10, 19), r(0, 25, 30), r(1, 0, 4), r(0, 5, 12)])
    >>> [(m.partition, m.first, m.last) for m in merged]
    [(0, 0, 19), (0, 25, 30), (1, 0, 4)]
    """
    merged: list[OffsetRange] = []
    for r in sorted(chain(existing, new)):
        if r.first > r.last or r.first < 0:
            msg = f"offset range {r} is empty or negative: first must be >= 0 and <= last"
            raise RegistryError(msg)
        if merged:
            top = merged[-1]
            same = top.topic == r.topic and top.partition == r.partition
            if same and r.first <= top.last + 1:
                if r.last > top.last:
                    merged[-1] = OffsetRange(top.topic, top.partition, top.first, r.last)
                continue
        merged.append(r)
    return merged


def gaps(ranges: Iterable[OffsetRange]) -> list[OffsetRange]:
    """The stretches missing between the ranges of each partition (nothing before the first one).

    >>> r = lambda p, a, b: OffsetRange("events", p, a, b)
    >>> gaps([r(0, 0, 9), r(0, 20, 29), r(1, 0, 4), r(0, 10, 14)])
    [OffsetRange(topic='events', partition=0, first=15, last=19)]
    """
    merged = merge_ranges((), ranges)
    return [
        OffsetRange(a.topic, a.partition, a.last + 1, b.first - 1)
        for a, b in pairwise(merged)
        if (a.topic, a.partition) == (b.topic, b.partition)
    ]
