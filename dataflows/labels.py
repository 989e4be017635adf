"""Join delayed labels to the features that were used at prediction time.

Features of unlabelled events wait here for their label, and labels that arrive before their
event wait for it, each for at most ``window_s`` seconds and ``max_pending`` entries: memory is
bounded. Features that expire are counted (most events never get a label); a label that expires
unmatched is returned to the caller, which dead-letters it — it is never dropped silently.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any, Self

import msgspec

from dataflows.records import Label, SourceRef

__all__ = ["LabelJoin", "Pending"]


class Pending(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """An event's features, and what each model predicted for it, waiting for the label.

    Never changed once made (``x`` and ``preds`` included): a snapshot of the join shares these
    objects with the live join instead of copying them.
    """

    x: list[float]
    preds: dict[str, int]
    at: float
    source: SourceRef


_FEATURES = msgspec.msgpack.Decoder(list[tuple[str, Pending]])
_LABELS = msgspec.msgpack.Decoder(list[tuple[str, Label, float]])
_ENCODER = msgspec.msgpack.Encoder()


class LabelJoin:
    """Both sides of the join, keyed by event id, in arrival order."""

    def __init__(self, window_s: float, max_pending: int) -> None:
        self.window_s = window_s
        self.max_pending = max_pending
        # Ordered dicts: the oldest entry is taken off the front in O(1). A plain dict scans the
        # slots its deletions left at the front for it: at max_pending, evicting one feature per
        # event took 8 % of the serving process's time (bench.e2e_kafka's profile).
        self._features: OrderedDict[str, Pending] = OrderedDict()
        self._labels: OrderedDict[str, tuple[Label, float]] = OrderedDict()
        self.features_expired_total = 0
        self.labels_unmatched_total = 0

    def snapshot(self) -> Self:
        """A copy that later changes to this join do not reach, made in O(entries) pointer copies.

        Entries are immutable (`Pending`, `Label`), so only the two dicts are copied.
        """
        copied = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied._features = OrderedDict(self._features)
        copied._labels = OrderedDict(self._labels)
        return copied

    def __getstate__(self) -> dict[str, Any]:
        # Pickling 100k small objects one by one takes most of a second; msgpack takes milliseconds.
        state = dict(self.__dict__)
        state["_features"] = _ENCODER.encode(list(self._features.items()))
        state["_labels"] = _ENCODER.encode([(k, label, at) for k, (label, at) in self._labels.items()])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._features = OrderedDict(_FEATURES.decode(state["_features"]))  # insertion order = arrival order
        self._labels = OrderedDict((k, (label, at)) for k, label, at in _LABELS.decode(state["_labels"]))

    @property
    def pending_features(self) -> int:
        return len(self._features)

    @property
    def pending_labels(self) -> int:
        return len(self._labels)

    def add_features(self, event_id: str, pending: Pending) -> Label | None:
        """Keep the features until their label comes; return the label if it is already here."""
        waiting = self._labels.pop(event_id, None)
        if waiting is not None:
            return waiting[0]
        if self._features.pop(event_id, None) is not None:  # a re-sent id keeps only its latest features
            self.features_expired_total += 1
        self._features[event_id] = pending
        while len(self._features) > self.max_pending:
            self._features.popitem(last=False)
            self.features_expired_total += 1
        return None

    def next_expiry(self) -> float | None:
        """When the oldest waiting feature or label passes the window (None if nothing waits)."""
        oldest = [
            *(self._features[k].at for k in itertools.islice(self._features, 1)),
            *(self._labels[k][1] for k in itertools.islice(self._labels, 1)),
        ]
        return min(oldest) + self.window_s if oldest else None

    def add_label(self, label: Label, now: float) -> tuple[Pending | None, list[Label]]:
        """Match a label to its features, or keep it until they come.

        Returns the matched features (or None) and labels evicted to respect ``max_pending``.
        """
        pending = self._features.pop(label.id, None)
        if pending is not None:
            return pending, []
        evicted: list[Label] = []
        previous = self._labels.pop(label.id, None)
        if previous is not None:
            evicted.append(previous[0])  # a second label for the same id: the first one is unmatched
        self._labels[label.id] = (label, now)
        while len(self._labels) > self.max_pending:
            evicted.append(self._labels.popitem(last=False)[1][0])
        self.labels_unmatched_total += len(evicted)
        return None, evicted

    def expire(self, now: float) -> list[Label]:
        """Drop what waited longer than the window; return the labels that never found their event."""
        horizon = now - self.window_s
        while self._features:
            first = next(iter(self._features))
            if self._features[first].at > horizon:
                break
            del self._features[first]
            self.features_expired_total += 1
        unmatched: list[Label] = []
        while self._labels:
            first = next(iter(self._labels))
            label, at = self._labels[first]
            if at > horizon:
                break
            del self._labels[first]
            unmatched.append(label)
        self.labels_unmatched_total += len(unmatched)
        return unmatched

    def drain(self) -> list[Label]:
        """At the end of the stream: every waiting label is unmatched, every waiting feature expired."""
        self.features_expired_total += len(self._features)
        self._features.clear()
        unmatched = [label for label, _ in self._labels.values()]
        self._labels.clear()
        self.labels_unmatched_total += len(unmatched)
        return unmatched
