"""A model group: the models that share one stream, and the test-then-train step over a micro-batch.

For each micro-batch (events and delayed labels, mixed) the group
1. dead-letters labels that waited longer than the window for their event;
2. has every model predict every event, and publishes the champion's predictions;
3. gathers the labelled examples — inline labels, and delayed labels joined to the features and
   predictions logged at prediction time — scores each model's *earlier* predictions on them
   (prequential), and only then lets each model learn them;
4. reports what each model did as a `ModelEvent`, with the Kafka offsets it learned from.

A model that raises never takes the worker down: if the champion cannot predict, the batch's
events are dead-lettered (``model_error``); if a model cannot learn, it skips the batch and a
``learn_error`` model event says why.

The group holds more than one model so that candidates (canary, bandits, shadow) fit in later;
today it holds the champion only.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
import numpy as np
from bytewax.operators import StatefulLogic

from dataflows.labels import LabelJoin, Pending
from dataflows.records import DeadLetter, DeadLetterReason, Event, Label, ModelEvent, Prediction, SourceRef
from evaluators import PrequentialScore
from learners import Learner

__all__ = ["STATE_FORMAT", "GroupLogic", "GroupState", "ModelSlot", "Output"]

Output = Prediction | DeadLetter | ModelEvent
Clock = Callable[[], float]
NO_PREDICTION = -1  # a model that could not predict scores as wrong, never as right


@dataclass
class ModelSlot:
    """One model of a group: the learner, how many batches it learned, and its evidence."""

    name: str
    learner: Learner
    score: PrequentialScore
    version: int = 0
    lineage: dict[str, list[int]] = field(default_factory=dict)  # "topic/partition" -> [first, last]


STATE_FORMAT = 1  # bump when GroupState's shape changes; older snapshots are then refused


@dataclass
class GroupState:
    """Everything a group keeps; Bytewax snapshots it (pickle, own recovery store only).

    ``features`` and ``classes`` say which schema the models were built for, and ``format`` which
    shape of this class wrote the snapshot, so that a resume can refuse state that does not fit.
    """

    name: str
    champion: str
    models: dict[str, ModelSlot]
    join: LabelJoin
    features: list[str]
    classes: list[int | str]
    batches: int = 0
    format: int = STATE_FORMAT


@dataclass(slots=True)
class _Examples:
    """Labelled examples gathered from one micro-batch, with each model's earlier predictions.

    Inline-labelled events arrive as array slices; joined delayed labels one row at a time.
    Both are turned into one set of arrays once, in `arrays`.
    """

    chunks: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = field(default_factory=list)
    rows_x: list[list[float]] = field(default_factory=list)
    rows_y: list[int] = field(default_factory=list)
    rows_preds: list[dict[str, int]] = field(default_factory=list)
    sources: list[SourceRef] = field(default_factory=list)

    def add_chunk(self, x: np.ndarray, y: np.ndarray, preds: dict[str, np.ndarray], sources: list[SourceRef]) -> None:
        self.chunks.append((x, y, preds))
        self.sources.extend(sources)

    def add_row(self, x: list[float], y: int, preds: dict[str, int], source: SourceRef) -> None:
        self.rows_x.append(x)
        self.rows_y.append(y)
        self.rows_preds.append(preds)
        self.sources.append(source)

    def arrays(self, models: Iterable[str], n_features: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        xs = [c[0] for c in self.chunks] + [np.asarray(self.rows_x, dtype=np.float64).reshape(-1, n_features)]
        ys = [c[1] for c in self.chunks] + [np.asarray(self.rows_y, dtype=np.int64)]
        preds = {
            name: np.concatenate(
                [c[2][name] for c in self.chunks]
                + [np.asarray([r.get(name, NO_PREDICTION) for r in self.rows_preds], dtype=np.int64)]
            )
            for name in models
        }
        return np.concatenate(xs), np.concatenate(ys).astype(np.int64), preds


class GroupLogic(StatefulLogic[list[Event | Label], Output, GroupState]):
    """Bytewax stateful logic for one group.

    ``drain_on_eof`` dead-letters waiting labels at the end of the input. ``delayed_labels`` says
    whether labels can arrive on their own topic; without one, features of unlabelled events are
    not kept, since no label could ever join them.
    """

    def __init__(
        self, state: GroupState, *, drain_on_eof: bool, delayed_labels: bool = True, clock: Clock = time.time
    ) -> None:
        self.state = state
        self.drain_on_eof = drain_on_eof
        self.delayed_labels = delayed_labels
        self.clock = clock

    def on_item(self, value: list[Event | Label]) -> tuple[Iterable[Output], bool]:
        return self.process(value), StatefulLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[Output], bool]:
        # A quiet stream still expires what waited too long.
        return [_unmatched(label) for label in self.state.join.expire(self.clock())], StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        at = self.state.join.next_expiry()
        return None if at is None else datetime.fromtimestamp(at, UTC)

    def on_eof(self) -> tuple[Iterable[Output], bool]:
        if not self.drain_on_eof:
            return [], StatefulLogic.RETAIN
        return [_unmatched(label) for label in self.state.join.drain()], StatefulLogic.RETAIN

    def snapshot(self) -> GroupState:
        # Bytewax may pickle the snapshot after later batches ran: hand it a copy, not the live state.
        # The models are deep-copied (learners change in place); the label join, up to max_pending
        # entries each side, holds immutable entries and is copied shallowly (bench/snapshot.py).
        state = self.state
        return dataclasses.replace(
            state, models=copy.deepcopy(state.models), join=state.join.snapshot(),
            features=list(state.features), classes=list(state.classes),
        )  # fmt: skip

    def process(self, batch: list[Event | Label]) -> list[Output]:
        join = self.state.join
        now = self.clock()
        out: list[Output] = [_unmatched(label) for label in join.expire(now)]
        events = [item for item in batch if isinstance(item, Event)]
        labels = [item for item in batch if isinstance(item, Label)]
        if not events and not labels:
            return out
        self.state.batches += 1
        examples = _Examples()
        served = 0
        if events:
            predicted = self._predict(events, examples, now)
            served = sum(1 for o in predicted if isinstance(o, Prediction))
            out.extend(predicted)
        for label in labels:
            pending, evicted = join.add_label(label, now)
            out.extend(_unmatched(e) for e in evicted)
            if pending is not None:
                examples.add_row(pending.x, label.label, pending.preds, pending.source)
        out.extend(self._learn(examples, served, now))
        return out

    def _predict(self, events: list[Event], examples: _Examples, now: float) -> list[Output]:
        state = self.state
        x = np.asarray([e.x for e in events], dtype=np.float64)
        out: list[Output] = []
        preds: dict[str, np.ndarray] = {}
        proba: np.ndarray | None = None
        expected_shape = (len(events), len(state.classes))
        for name, slot in state.models.items():
            try:
                p = np.asarray(slot.learner.predict_proba(x), dtype=np.float64)
                if p.shape != expected_shape:  # a user's learner may return anything
                    msg = f"probabilities of shape {p.shape}, expected {expected_shape}"
                    raise ValueError(msg)
                usable = np.isfinite(p).all(axis=1)
                if not usable.all():
                    msg = f"{int((~usable).sum())} of {len(p)} rows of probabilities are not finite"
                    raise FloatingPointError(msg)
            except Exception as exc:
                out.append(self._model_event("predict_error", slot, now, error=f"{type(exc).__name__}: {exc}"))
                preds[name] = np.full(len(events), NO_PREDICTION, dtype=np.int64)
                continue
            preds[name] = p.argmax(axis=1)
            if name == state.champion:
                proba = p
        champion = state.models[state.champion]
        if proba is None:
            # Nothing to serve: the events go to the dead-letter topic, not nowhere. Their labels are
            # still joined and learned below, so the models (and waiting labels) carry on.
            out.extend(_model_error(e, champion.name) for e in events)
        else:
            now_ms, classes = int(now * 1000), state.classes
            out.extend(
                Prediction(
                    e.id, state.name, champion.name, champion.version, classes[c], p, e.source.ts_ms, now_ms, e.source
                )
                for e, c, p in zip(events, preds[state.champion].tolist(), proba.tolist(), strict=True)
            )  # fmt: skip
        inline = np.fromiter((-1 if e.label is None else e.label for e in events), np.int64, len(events))
        labelled = np.flatnonzero(inline >= 0)
        if len(labelled):
            examples.add_chunk(
                x[labelled], inline[labelled], {n: p[labelled] for n, p in preds.items()},
                [events[i].source for i in labelled.tolist()],
            )  # fmt: skip
        if not self.delayed_labels:
            return out
        for i in np.flatnonzero(inline < 0).tolist():
            e = events[i]
            logged = {name: int(p[i]) for name, p in preds.items()}
            early = state.join.add_features(e.id, Pending(e.x, logged, now, e.source))
            if early is not None:
                examples.add_row(e.x, early.label, logged, e.source)
        return out

    def _learn(self, examples: _Examples, n_predicted: int, now: float) -> list[Output]:
        state = self.state
        n = len(examples.sources)
        n_features = state.models[state.champion].learner.n_features
        x, y, preds = examples.arrays(state.models, n_features)
        offsets = _offset_ranges(examples.sources)
        out: list[Output] = []
        for name, slot in state.models.items():
            correct = learned = 0
            if n:
                y_pred = preds[name]
                slot.score.update(y, y_pred)
                correct = int((y_pred == y).sum())
                try:
                    slot.learner.learn(x, y)
                    learned = n
                except Exception as exc:
                    out.append(self._model_event("learn_error", slot, now, error=f"{type(exc).__name__}: {exc}"))
            if learned:
                slot.version += 1
                for tp, (lo, hi) in offsets.items():
                    seen = slot.lineage.setdefault(tp, [lo, hi])
                    seen[0], seen[1] = min(seen[0], lo), max(seen[1], hi)
            out.append(
                self._model_event(
                    "batch", slot, now,
                    n_predicted=n_predicted if name == state.champion else 0,
                    n_labelled=n, n_learned=learned, n_correct=correct,
                    offsets={tp: list(r) for tp, r in offsets.items()} if learned else {},
                )
            )  # fmt: skip
        return out

    def _model_event(self, kind: str, slot: ModelSlot, now: float, **fields: object) -> ModelEvent:
        state, join = self.state, self.state.join
        snap = slot.score.snapshot()
        return ModelEvent(
            type=kind,
            group=state.name,
            model=slot.name,
            model_version=slot.version,
            ts_ms=int(now * 1000),
            batch=state.batches,
            accuracy=snap.accuracy,
            rolling_accuracy=snap.rolling_accuracy,
            pending_features=join.pending_features,
            pending_labels=join.pending_labels,
            features_expired_total=join.features_expired_total,
            labels_unmatched_total=join.labels_unmatched_total,
            **fields,  # type: ignore[arg-type]
        )


def _offset_ranges(sources: list[SourceRef]) -> dict[str, tuple[int, int]]:
    ranges: dict[str, tuple[int, int]] = {}
    for s in sources:
        tp = f"{s.topic}/{s.partition}"
        lo, hi = ranges.get(tp, (s.offset, s.offset))
        ranges[tp] = (min(lo, s.offset), max(hi, s.offset))
    return ranges


def _unmatched(label: Label) -> DeadLetter:
    detail = (
        f"no unlabelled event with id {label.id!r} was waiting for it within the label window "
        "(the event never came, came earlier than the window, or was already labelled)"
    )
    return DeadLetter(DeadLetterReason.LABEL_UNMATCHED, detail, label.source, label.original)


def _model_error(event: Event, model: str) -> DeadLetter:
    # The event's bytes are not kept past decoding; its decoded content stands in for them.
    body = msgspec.json.encode({"id": event.id, "features": event.x, "label_index": event.label})
    detail = f"the champion {model!r} could not predict this event (see the model-events topic)"
    return DeadLetter(DeadLetterReason.MODEL_ERROR, detail, event.source, body)
