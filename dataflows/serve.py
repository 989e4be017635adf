"""Serving: predict each micro-batch with an immutable snapshot of the serving models, before any
learning happens.

The serve step reads the group's current `ServingTable` from the `ServingBoard`
(`dataflows.board`) when a batch arrives and never waits for training: the champion, during a
canary the candidate snapshot on a sticky share of keys, with live refresh the refresh fork's
latest state in place of the champion it continues (route ``live``), and with a vote the
portfolio's members before either (route ``vote``, `dataflows.portfolio`). Learners on the board
are never taught again (a new state is a new object), so reading them from several workers at
once is safe. Every worker serves the partitions it reads (`Server`).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, NamedTuple

import msgspec
import numpy as np

from dataflows.board import CANARY, CHAMPION, ROUTES, Served, ServingBoard, ServingTable
from dataflows.decode import Decoder, RawMessage
from dataflows.portfolio import BANDIT_ROUTE, VOTE_ROUTE
from dataflows.ports import Clock, Metrics
from dataflows.records import (
    DeadLetter,
    DeadLetterReason,
    Event,
    Label,
    ModelReport,
    Prediction,
    SinkItem,
    encode_dead_letter,
    encode_model_event,
    encode_predictions,
)
from learners import Learner

if TYPE_CHECKING:
    from confluent_kafka import Message

    from dataflows.config import Topics

__all__ = [
    "CANARY", "CHAMPION", "ROUTES", "ServeStep", "Served", "ServedBatch", "Server", "ServingBoard", "ServingTable",
    "Unavailable", "merge_served", "serve_batch",
]  # fmt: skip

NO_PREDICTION = -1


class ServedBatch(msgspec.Struct, frozen=True):
    """A micro-batch after serving, on its way to training.

    ``routes`` and ``predicted`` are per event: which route served it, and the class index it was
    given (-1 when the event could not be served).
    """

    events: list[Event]
    labels: list[Label]
    routes: list[int]
    predicted: list[int]


def merge_served(batches: list[ServedBatch]) -> ServedBatch:
    """Several served micro-batches as one, in order: training learns in jobs of about
    ``batching.max_size`` examples however small the batches that served them."""
    if len(batches) == 1:
        return batches[0]
    return ServedBatch(
        [e for b in batches for e in b.events], [label for b in batches for label in b.labels],
        [r for b in batches for r in b.routes], [c for b in batches for c in b.predicted],
    )  # fmt: skip


class Unavailable(Exception):
    """Raised by a model that cannot answer now (a live model whose process is busy, or has moved
    on to another version): the next model in the chain serves, and no error is reported."""


class ServeOut(NamedTuple):
    predictions: list[Prediction]
    dead_letters: list[DeadLetter]
    batch: ServedBatch
    errors: list[tuple[str, str, str]]  # (route, version, what it raised), for the model-events topic
    # per route that served: the event→prediction latency of each of its predictions, in seconds
    latencies: dict[str, np.ndarray]


def serve_batch(table: ServingTable, batch: list[Event | Label], classes: list[int | str], now: float) -> ServeOut:
    """Predict every event of ``batch`` with the table's models; labels pass through to training."""
    events = [item for item in batch if isinstance(item, Event)]
    labels = [item for item in batch if isinstance(item, Label)]
    if not events:
        return ServeOut([], [], ServedBatch([], labels, [], []), [], {})
    x = np.asarray([e.x for e in events], dtype=np.float64)
    routes = table.routes([e.id for e in events])
    proba = np.zeros((len(events), len(classes)))
    ok = np.zeros(len(events), dtype=np.bool_)
    errors: list[tuple[str, str, str]] = []
    # Who may serve a route's events, in order: a model that cannot predict leaves them to the next.
    champion_chain: list[tuple[str, Served]] = [(ROUTES[CHAMPION], table.champion)]
    if table.fresh is not None:
        champion_chain.insert(0, ("live", table.fresh))
    votes: dict[str, float] | None = None  # the versions and weights behind the vote's predictions
    bandit = table.vote is not None and table.vote.shares is not None
    if table.vote is not None and table.vote.ready and not bandit:
        version, votes = table.vote.served_by()
        champion_chain.insert(0, (VOTE_ROUTE, Served(version, table.vote)))  # type: ignore[arg-type]
    usual_name, usual = champion_chain[0]  # what serves most events: set once, not per event
    versions = [usual.version] * len(events)
    names = [usual_name] * len(events)  # the route each prediction says served it
    canary_chain = [(ROUTES[CANARY], table.canary)] if table.canary is not None else []
    served_rows: dict[str, list[np.ndarray]] = {}  # route name → the rows it served
    # Each route's rows are chosen before any is served: rows the canary (or a bandit's member)
    # leaves to the champion are served once, by its chain, not again with the champion's own.
    champion_rows = np.flatnonzero(routes == CHAMPION)
    plan = [(np.flatnonzero(routes == CANARY), canary_chain + champion_chain)]
    if bandit and table.vote is not None:  # one member per event on the champion's route (`model.vote.policy`)
        arms = table.vote.arms([events[i].id for i in champion_rows.tolist()])
        taken = np.zeros(len(champion_rows), dtype=np.bool_)
        for name, rows in arms.items():
            member = table.vote.members[name]
            plan.append(
                (champion_rows[rows], [(BANDIT_ROUTE, Served(member.version, member.learner)), *champion_chain])
            )
            taken[rows] = True
        champion_rows = champion_rows[~taken]
    plan.append((champion_rows, champion_chain))
    for rows, chain in plan:
        if not len(rows):  # no canary: no row is routed to it
            continue
        for name, model in chain:
            try:
                if name == VOTE_ROUTE and table.vote is not None:  # the members that answered are named
                    answer, (version, votes) = table.vote.answer(x[rows])
                    proba[rows] = _checked(answer, len(rows), len(classes))
                    model = Served(version, table.vote)  # type: ignore[arg-type]
                else:
                    proba[rows] = _predict(model.learner, x[rows], len(classes))
            except Unavailable:
                continue
            except Exception as exc:
                errors.append((name, model.version, f"{type(exc).__name__}: {exc}"))
                continue
            ok[rows] = True
            served_rows.setdefault(name, []).append(rows)
            if model.version != usual.version or name != usual_name:
                for i in rows.tolist():
                    versions[i], names[i] = model.version, name
            if name != ROUTES[CANARY]:
                routes[rows] = CHAMPION  # canary evidence counts only what the canary served
            break
    predicted = np.where(ok, proba.argmax(axis=1), NO_PREDICTION)
    now_ms = int(now * 1000)
    predictions: list[Prediction] = []
    dead: list[DeadLetter] = []
    route_list, predicted_list, proba_list = routes.tolist(), predicted.tolist(), proba.tolist()
    event_ms: list[int | None] = []  # each event's time, for the latencies: read here, where it is read anyway
    for i, e in enumerate(events):
        source = e.source
        event_ms.append(source.ts_ms)
        c = predicted_list[i]
        if c == NO_PREDICTION:
            dead.append(_model_error(e, versions[i]))
            continue
        predictions.append(
            Prediction(
                e.id, table.group, versions[i], names[i], classes[c], proba_list[i], source.ts_ms, now_ms, source,
                votes if names[i] == VOTE_ROUTE else None,
            )
        )  # fmt: skip
    served = ServedBatch(events, labels, route_list, predicted_list)
    return ServeOut(predictions, dead, served, errors, _latencies(served_rows, _floats(event_ms), now_ms))


def _latencies(served_rows: dict[str, list[np.ndarray]], event_ms: np.ndarray, now_ms: int) -> dict[str, np.ndarray]:
    """Per route, each prediction's event→prediction latency in seconds, as its record says it
    (``predicted_ts_ms - event_ts_ms``); a clock behind the event's counts as 0, NaN stays NaN."""
    out = {}
    for name, parts in served_rows.items():
        rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
        latency = now_ms - (event_ms if len(rows) == len(event_ms) else event_ms[rows])  # one route: every row
        np.maximum(latency, 0.0, out=latency)
        latency *= 0.001
        out[name] = latency
    return out


def _floats(ms: list[int | None]) -> np.ndarray:
    """Times in ms as floats, NaN for None."""
    try:  # half the time of np.array(ms, dtype=float64) for the usual case
        return np.fromiter(ms, dtype=np.int64, count=len(ms)).astype(np.float64)
    except TypeError:  # a None
        return np.array(ms, dtype=np.float64)


def _mean(values: np.ndarray) -> float:
    mean = float(values.sum()) / len(values)
    if math.isnan(mean):  # some events had no time: the mean of the others
        known = values[~np.isnan(values)]
        mean = float(known.sum()) / len(known) if len(known) else math.nan
    return mean


def _predict(learner: Learner, x: np.ndarray, n_classes: int) -> np.ndarray:
    return _checked(learner.predict_proba(x), len(x), n_classes)


def _checked(proba: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.shape != (n, n_classes):  # a user's learner may return anything
        msg = f"probabilities of shape {p.shape}, expected {(n, n_classes)}"
        raise ValueError(msg)
    bad = ~np.isfinite(p).all(axis=1)
    if bad.any():
        msg = f"{int(bad.sum())} of {len(p)} rows of probabilities are not finite"
        raise FloatingPointError(msg)
    return p


def _model_error(event: Event, version: str) -> DeadLetter:
    # The event's bytes are not kept past decoding; its decoded content stands in for them.
    body = msgspec.json.encode({"id": event.id, "features": event.x, "label_index": event.label})
    detail = f"the serving model {version!r} could not predict this event (see the model-events topic)"
    return DeadLetter(DeadLetterReason.MODEL_ERROR, detail, event.source, body)


class ServeStep(NamedTuple):
    """What serving one micro-batch gives: the sink's messages (predictions, dead letters and
    serving errors, encoded) and, when it held any record, the batch on its way to training."""

    out: list[SinkItem]
    batch: ServedBatch | None


class Server:
    """The ``serve__batch`` step: a micro-batch of raw messages, as Bytewax hands this worker the
    messages of its partitions, decoded, predicted and encoded at once.

    Every worker serves its own partitions with the table on this process's board; nothing here
    waits for training. The batch is what the source's polls gave (``batching.max_size`` messages a
    partition at most, whatever had arrived: a poll does not wait), so an event waits for no timer.
    """

    def __init__(
        self, group: str, decoder: Decoder, board: ServingBoard, classes: list[int | str], topics: Topics,
        clock: Clock, metrics: Metrics,
    ) -> None:  # fmt: skip
        self.group = group
        self.decoder = decoder
        self.board = board
        self.classes = classes
        self.topics = topics
        self.clock = clock
        self.metrics = metrics

    def __call__(self, msgs: list[RawMessage | Message]) -> list[ServeStep]:
        started = time.perf_counter()
        records, dead = self.decoder.decode_many(msgs)
        now = self.clock()
        now_ms = int(now * 1000)
        topics = self.topics
        out: list[SinkItem] = []
        batch = None
        metrics, group = self.metrics, self.group
        if records:
            served = serve_batch(self.board.current(group), records, self.classes, now)
            out = [encode_predictions(served.predictions, topics.predictions)]
            dead.extend(served.dead_letters)
            out.extend(encode_model_event(self._error(*error, now_ms), topics.model_events) for error in served.errors)
            batch = served.batch
            for route, latencies in served.latencies.items():
                metrics.served(group, route, len(latencies), _mean(latencies))
                metrics.prediction_latencies(group, route, latencies)
        if dead:
            reasons: dict[DeadLetterReason, int] = {}  # a batch holds a few: cheaper than a Counter
            for d in dead:
                reasons[d.reason] = reasons.get(d.reason, 0) + 1
            for reason, n in reasons.items():
                metrics.dead_lettered(reason.value, n)
            out.extend(encode_dead_letter(d, topics.dead_letters, now_ms) for d in dead)
        metrics.batch_served(group, len(msgs), time.perf_counter() - started)
        return [ServeStep(out, batch)]

    def _error(self, route: str, version: str, error: str, now_ms: int) -> ModelReport:
        return ModelReport(
            group=self.group, model=route, version=version, role="serving", ts_ms=now_ms, batch=0, error=error
        )
