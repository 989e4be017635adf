"""A model group: the models that share one stream, and the test-then-train step over a micro-batch.

For each micro-batch (events and delayed labels, mixed) the group
1. dead-letters labels that waited longer than the window for their event;
2. has every model predict every event, and publishes the champion's predictions;
3. gathers the labelled examples — inline labels, and delayed labels joined to the features and
   predictions logged at prediction time — scores each model's *earlier* predictions on them
   (prequential), and only then lets each model learn them;
4. reports what each model did as a `ModelEvent`, with the Kafka offsets it learned from.

The group holds more than one model so that candidates (canary, bandits, shadow) fit in later;
today it holds the champion only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from bytewax.operators import StatefulLogic

from dataflows.labels import LabelJoin, Pending
from dataflows.records import DeadLetter, DeadLetterReason, Event, Label, ModelEvent, Prediction, SourceRef
from evaluators import PrequentialScore
from learners import Learner

__all__ = ["GroupLogic", "GroupState", "ModelSlot", "Output"]

Output = Prediction | DeadLetter | ModelEvent
Clock = Callable[[], float]


@dataclass
class ModelSlot:
    """One model of a group: the learner, how many batches it learned, and its evidence."""

    name: str
    learner: Learner
    score: PrequentialScore
    version: int = 0
    lineage: dict[str, list[int]] = field(default_factory=dict)  # "topic/partition" -> [first, last]


@dataclass
class GroupState:
    """Everything a group keeps; Bytewax snapshots it (pickle, own recovery store only)."""

    name: str
    champion: str
    models: dict[str, ModelSlot]
    join: LabelJoin
    classes: list[int | str]


@dataclass(slots=True)
class _Examples:
    """Labelled examples gathered from one micro-batch, with each model's earlier predictions."""

    x: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)
    preds: dict[str, list[np.ndarray]] = field(default_factory=dict)
    sources: list[SourceRef] = field(default_factory=list)

    def add(self, x: np.ndarray, y: np.ndarray, preds: dict[str, np.ndarray], sources: list[SourceRef]) -> None:
        self.x.append(x)
        self.y.append(y)
        for name, p in preds.items():
            self.preds.setdefault(name, []).append(p)
        self.sources.extend(sources)


class GroupLogic(StatefulLogic[list[Event | Label], Output, GroupState]):
    """Bytewax stateful logic for one group; ``drain_on_eof`` dead-letters waiting labels at the end."""

    def __init__(self, state: GroupState, *, drain_on_eof: bool, clock: Clock = time.time) -> None:
        self.state = state
        self.drain_on_eof = drain_on_eof
        self.clock = clock

    def on_item(self, value: list[Event | Label]) -> tuple[Iterable[Output], bool]:
        return self.process(value), StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Output], bool]:
        if not self.drain_on_eof:
            return [], StatefulLogic.RETAIN
        return [_unmatched(label) for label in self.state.join.drain()], StatefulLogic.RETAIN

    def snapshot(self) -> GroupState:
        return self.state

    def process(self, batch: list[Event | Label]) -> list[Output]:
        join = self.state.join
        now = self.clock()
        out: list[Output] = [_unmatched(label) for label in join.expire(now)]
        events = [item for item in batch if isinstance(item, Event)]
        labels = [item for item in batch if isinstance(item, Label)]
        examples = _Examples()
        if events:
            out.extend(self._predict(events, examples, now))
        for label in labels:
            pending, evicted = join.add_label(label, now)
            out.extend(_unmatched(e) for e in evicted)
            if pending is not None:
                row = np.asarray([pending.x])
                preds = {name: np.asarray([p]) for name, p in pending.preds.items()}
                examples.add(row, np.asarray([label.label]), preds, [pending.source])
        if events or labels:
            out.extend(self._learn(examples, len(events), now))
        return out

    def _predict(self, events: list[Event], examples: _Examples, now: float) -> list[Output]:
        state = self.state
        x = np.asarray([e.x for e in events], dtype=np.float64)
        probas = {name: slot.learner.predict_proba(x) for name, slot in state.models.items()}
        preds = {name: p.argmax(axis=1) for name, p in probas.items()}
        champion = state.models[state.champion]
        proba, chosen, classes = probas[state.champion], preds[state.champion], state.classes
        now_ms = int(now * 1000)
        out: list[Output] = [
            Prediction(
                e.id,
                state.name,
                champion.name,
                champion.version,
                classes[c],
                p,
                e.source.ts_ms,
                now_ms,
                e.source,
            )
            for e, c, p in zip(events, chosen.tolist(), proba.tolist(), strict=True)
        ]
        inline = np.asarray([-1 if e.label is None else e.label for e in events])
        labelled = inline >= 0
        if labelled.any():
            idx = np.flatnonzero(labelled)
            examples.add(x[idx], inline[idx], {n: p[idx] for n, p in preds.items()}, [events[i].source for i in idx])
        for i in np.flatnonzero(~labelled).tolist():
            e = events[i]
            pending = Pending(e.x, {n: int(p[i]) for n, p in preds.items()}, now, e.source)
            early = state.join.add_features(e.id, pending)
            if early is not None:
                examples.add(
                    x[i : i + 1],
                    np.asarray([early.label]),
                    {n: p[i : i + 1] for n, p in preds.items()},
                    [e.source],
                )
        return out

    def _learn(self, examples: _Examples, n_predicted: int, now: float) -> list[Output]:
        state, join = self.state, self.state.join
        n = len(examples.sources)
        if n:
            x = np.concatenate(examples.x)
            y = np.concatenate(examples.y).astype(np.int64)
            offsets = _offset_ranges(examples.sources)
        out: list[Output] = []
        for name, slot in state.models.items():
            correct = 0
            if n:
                y_pred = np.concatenate(examples.preds[name])
                slot.score.update(y.tolist(), y_pred.tolist())
                correct = int((y_pred == y).sum())
                slot.learner.learn(x, y)
                slot.version += 1
                for tp, (lo, hi) in offsets.items():
                    seen = slot.lineage.setdefault(tp, [lo, hi])
                    seen[0], seen[1] = min(seen[0], lo), max(seen[1], hi)
            snap = slot.score.snapshot()
            out.append(
                ModelEvent(
                    type="batch",
                    group=state.name,
                    model=name,
                    model_version=slot.version,
                    ts_ms=int(now * 1000),
                    n_predicted=n_predicted if name == state.champion else 0,
                    n_learned=n,
                    n_correct=correct,
                    accuracy=snap.accuracy,
                    rolling_accuracy=snap.rolling_accuracy,
                    pending_features=join.pending_features,
                    pending_labels=join.pending_labels,
                    features_expired_total=join.features_expired_total,
                    labels_unmatched_total=join.labels_unmatched_total,
                    offsets={tp: list(r) for tp, r in offsets.items()} if n else {},
                )
            )
        return out


def _offset_ranges(sources: list[SourceRef]) -> dict[str, tuple[int, int]]:
    ranges: dict[str, tuple[int, int]] = {}
    for s in sources:
        tp = f"{s.topic}/{s.partition}"
        lo, hi = ranges.get(tp, (s.offset, s.offset))
        ranges[tp] = (min(lo, s.offset), max(hi, s.offset))
    return ranges


def _unmatched(label: Label) -> DeadLetter:
    detail = f"no event with id {label.id!r} arrived within the label window"
    return DeadLetter(DeadLetterReason.LABEL_UNMATCHED, detail, label.source, label.original)
