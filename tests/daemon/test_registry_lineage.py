"""Offset lineage as pure functions: merging what a version learned, and the gaps it left."""

from __future__ import annotations

import pytest

from daemon.registry import RegistryError, gaps, merge_ranges
from dataflows.ports import OffsetRange


def _r(first: int, last: int, partition: int = 0, topic: str = "events") -> OffsetRange:
    return OffsetRange(topic, partition, first, last)


@pytest.mark.parametrize(
    ("existing", "new", "merged"),
    [
        pytest.param([_r(0, 9)], [_r(5, 14)], [_r(0, 14)], id="overlap"),
        pytest.param([_r(0, 9)], [_r(2, 3)], [_r(0, 9)], id="contained"),
        pytest.param([_r(0, 9)], [_r(10, 19)], [_r(0, 19)], id="adjacent"),
        pytest.param([_r(10, 19)], [_r(0, 9)], [_r(0, 19)], id="adjacent-before"),
        pytest.param([_r(0, 9)], [_r(11, 19)], [_r(0, 9), _r(11, 19)], id="gap-of-one-stays"),
        pytest.param([_r(0, 9)], [_r(10, 19, partition=1)], [_r(0, 9), _r(10, 19, partition=1)], id="partitions"),
        pytest.param(
            [_r(0, 9, topic="b")], [_r(10, 19, topic="a")], [_r(10, 19, topic="a"), _r(0, 9, topic="b")], id="topics"
        ),
        pytest.param([], [_r(30, 39), _r(0, 9), _r(20, 29), _r(10, 12)], [_r(0, 12), _r(20, 39)], id="unsorted"),
        pytest.param([_r(0, 0), _r(2, 2)], [_r(1, 1)], [_r(0, 2)], id="single-offsets-bridge"),
        pytest.param([_r(0, 9), _r(20, 29)], [_r(5, 24)], [_r(0, 29)], id="bridges-two"),
        pytest.param([], [], [], id="nothing"),
    ],
)
def test_merge_ranges(existing: list[OffsetRange], new: list[OffsetRange], merged: list[OffsetRange]) -> None:
    assert merge_ranges(existing, new) == merged
    assert merge_ranges(new, existing) == merged


def test_merge_ranges_leaves_its_inputs_alone_and_reads_iterators() -> None:
    existing = [_r(10, 19), _r(0, 4)]
    assert merge_ranges(existing, iter([_r(5, 9)])) == [_r(0, 19)]
    assert existing == [_r(10, 19), _r(0, 4)]


@pytest.mark.parametrize("bad", [_r(5, 4), _r(-1, 3)])
def test_merge_ranges_refuses_empty_or_negative_ranges(bad: OffsetRange) -> None:
    with pytest.raises(RegistryError, match=r"OffsetRange\(.*\) is empty or negative"):
        merge_ranges([], [_r(0, 9), bad])


def test_gaps_are_the_stretches_between_ranges_of_one_partition() -> None:
    ranges = [_r(50, 59), _r(0, 9), _r(20, 29), _r(10, 14), _r(100, 109, partition=1), _r(0, 9, partition=2)]
    assert gaps(ranges) == [_r(15, 19), _r(30, 49)]
    assert gaps([_r(0, 9), _r(10, 19)]) == []
    assert gaps([]) == []
