"""Serving: predict each micro-batch with an immutable snapshot of the serving models, before any
learning happens.

The `ServingBoard` holds, per group, the current `ServingTable`: the champion and, during a
canary, the candidate snapshot serving a sticky share of keys. Only the promoter publishes a new
table; the serve step reads whichever table is current when a batch arrives and never waits for
training. Learners on the board are never taught again (a new snapshot is a new object), so
reading them from several workers at once is safe.

With live refresh (`promotion.live_refresh`), a refresh fork's lane also puts its model's latest
state on the board after the batches it learns (`ServingBoard.refresh`): it serves on the
champion's route in place of the champion it continues, until the next promotion or until the
train step takes it off (`ServingBoard.drop_fresh`).

The board is in-process: every worker thread of this process sees a publish at once. Serving in
other processes would subscribe to the model-events topic's decisions and load the named version
from the registry (the same checkpoint, digest-checked) into its own board.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import msgspec
import numpy as np

from dataflows.records import DeadLetter, DeadLetterReason, Event, Label, Prediction
from evaluators import canary_bucket
from learners import Learner

__all__ = ["CHAMPION", "ROUTES", "Served", "ServedBatch", "ServingBoard", "ServingTable", "Unavailable", "serve_batch"]

CHAMPION, CANARY = 0, 1
ROUTES = ("champion", "canary")
NO_PREDICTION = -1


@dataclass(frozen=True)
class Served:
    """A frozen model on the board: its registry version and the learner (predict only)."""

    version: str
    learner: Learner


@dataclass(frozen=True)
class ServingTable:
    """Who serves a group: the champion, and a canary on ``canary_share`` of the keys.

    An event goes to the canary iff ``canary_bucket(event.id, seed) < canary_share``: sticky, and
    raising the share keeps every key already in the canary. ``fresh``, when set, is the champion's
    refresh fork as it last learned (live refresh): it serves the champion's route instead.
    """

    group: str
    champion: Served
    canary: Served | None = None
    canary_share: float = 0.0
    seed: int = 0
    fresh: Served | None = None

    def routes(self, ids: list[str]) -> np.ndarray:
        out = np.zeros(len(ids), dtype=np.int8)
        if self.canary is not None and self.canary_share > 0:
            share, seed = self.canary_share, self.seed
            out[[i for i, key in enumerate(ids) if canary_bucket(key, seed) < share]] = CANARY
        return out


class ServingBoard:
    """The current serving table of every group in this process."""

    def __init__(self) -> None:
        self._tables: dict[str, ServingTable] = {}
        self._lock = threading.Lock()

    def publish(self, table: ServingTable) -> None:
        with self._lock:
            self._tables[table.group] = table

    def refresh(self, group: str, champion: str, fresh: Served) -> bool:
        """Serve ``fresh`` on the champion's route, if ``champion`` is still the group's champion
        (a fork's state is never served in place of a champion it does not continue)."""
        with self._lock:
            table = self._tables.get(group)
            if table is None or table.champion.version != champion:
                return False
            self._tables[group] = dataclasses.replace(table, fresh=fresh)
            return True

    def update(self, group: str, change: Callable[[ServingTable], ServingTable]) -> None:
        """Publish ``change(current table)`` atomically with the lane's `refresh` (a read, then a
        publish, could put back an older fresh state)."""
        with self._lock:
            self._tables[group] = change(self.current(group))

    def drop_fresh(self, group: str) -> bool:
        """The champion itself serves its route again; True if a fresh state was taken off."""
        with self._lock:
            table = self._tables.get(group)
            if table is None or table.fresh is None:
                return False
            self._tables[group] = dataclasses.replace(table, fresh=None)
            return True

    def current(self, group: str) -> ServingTable:
        table = self._tables.get(group)
        if table is None:
            msg = f"no serving table for group {group!r}: the flow publishes one before it starts"
            raise LookupError(msg)
        return table


class ServedBatch(msgspec.Struct, frozen=True):
    """A micro-batch after serving, on its way to training.

    ``routes`` and ``predicted`` are per event: which route served it, and the class index it was
    given (-1 when the event could not be served).
    """

    events: list[Event]
    labels: list[Label]
    routes: list[int]
    predicted: list[int]


class Unavailable(Exception):
    """Raised by a model that cannot answer now (a live model whose process is busy, or has moved
    on to another version): the next model in the chain serves, and no error is reported."""


class ServeOut(NamedTuple):
    predictions: list[Prediction]
    dead_letters: list[DeadLetter]
    batch: ServedBatch
    errors: list[tuple[str, str, str]]  # (route, version, what it raised), for the model-events topic


def serve_batch(table: ServingTable, batch: list[Event | Label], classes: list[int | str], now: float) -> ServeOut:
    """Predict every event of ``batch`` with the table's models; labels pass through to training."""
    events = [item for item in batch if isinstance(item, Event)]
    labels = [item for item in batch if isinstance(item, Label)]
    if not events:
        return ServeOut([], [], ServedBatch([], labels, [], []), [])
    x = np.asarray([e.x for e in events], dtype=np.float64)
    routes = table.routes([e.id for e in events])
    proba = np.zeros((len(events), len(classes)))
    ok = np.zeros(len(events), dtype=np.bool_)
    errors: list[tuple[str, str, str]] = []
    # Who may serve a route's events, in order: a model that cannot predict leaves them to the next.
    champion_chain = [(ROUTES[CHAMPION], table.champion)]
    if table.fresh is not None:
        champion_chain.insert(0, ("live", table.fresh))
    usual_name, usual = champion_chain[0]  # what serves most events: set once, not per event
    versions = [usual.version] * len(events)
    names = [usual_name] * len(events)  # the route each prediction says served it
    canary_chain = [(ROUTES[CANARY], table.canary)] if table.canary is not None else []
    for code, chain in ((CANARY, canary_chain + champion_chain), (CHAMPION, champion_chain)):
        rows = np.flatnonzero(routes == code)  # no canary: no row is routed to it
        if not len(rows):
            continue
        for name, model in chain:
            try:
                proba[rows] = _predict(model.learner, x[rows], len(classes))
            except Unavailable:
                continue
            except Exception as exc:
                errors.append((name, model.version, f"{type(exc).__name__}: {exc}"))
                continue
            ok[rows] = True
            if model is not usual:
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
    for i, e in enumerate(events):
        c = predicted_list[i]
        if c == NO_PREDICTION:
            dead.append(_model_error(e, versions[i]))
            continue
        predictions.append(
            Prediction(
                e.id, table.group, versions[i], names[i], classes[c], proba_list[i],
                e.source.ts_ms, now_ms, e.source,
            )
        )  # fmt: skip
    served = ServedBatch(events, labels, route_list, predicted_list)
    return ServeOut(predictions, dead, served, errors)


def _predict(learner: Learner, x: np.ndarray, n_classes: int) -> np.ndarray:
    p = np.asarray(learner.predict_proba(x), dtype=np.float64)
    if p.shape != (len(x), n_classes):  # a user's learner may return anything
        msg = f"probabilities of shape {p.shape}, expected {(len(x), n_classes)}"
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
