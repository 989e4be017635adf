"""Prometheus metrics: `PrometheusMetrics` implements the flow's `Metrics` port on a
`CollectorRegistry` handed in; nothing is registered at import.

Every metric is declared in `PrometheusMetrics.__init__`, and docs/metrics.md lists each one (a
test holds the two to the same names). The flow calls once per micro-batch, poll or flush, never
per event; labelled children are looked up once and kept, so a call costs a dict lookup and an
increment. Labels stay bounded: groups, routes, model slots, topics, partitions and reasons come
from the config and the code, never from data; versions appear only on the info gauge, one series
per group and route.

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> metrics = PrometheusMetrics(registry)
>>> metrics.served("default", "champion", 3, 0.02)
>>> registry.get_sample_value("headwater_predictions_total", {"group": "default", "route": "champion"})
3.0
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from dataflows.ports import DECISION_ACTIONS, Clock, Metrics, Registry
from dataflows.records import DeadLetterReason, ModelReport
from dataflows.serve import ServingTable

QUARANTINE_ACTIONS = ("engaged", "cleared", "released")

__all__ = ["BatchHistogram", "PrometheusMetrics", "ServingWatch"]

log = logging.getLogger("headwater")

PREFIX = "headwater"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

M = TypeVar("M", bound=MetricWrapperBase)


class _Children(Generic[M]):
    """A labelled metric's children, each looked up once (``labels()`` validates and locks)."""

    def __init__(self, metric: M) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        child = self._children.get(labels)
        if child is None:  # two threads may both look it up: labels() gives both the same child
            child = self._children[labels] = self.metric.labels(*labels)
        return child

    def remove(self, *labels: str) -> None:
        """Drop the child of ``labels`` (nothing if there is none): its series leaves the exposition."""
        if self._children.pop(labels, None) is not None:
            self.metric.remove(*labels)


class BatchHistogram(Collector):
    """A labelled histogram fed a whole array of observations at once: a micro-batch's values are
    counted into the buckets with numpy (``searchsorted``, ``bincount``), one lock per call
    instead of one per value. NaN values are not observed."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:  # fmt: skip
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._bounds = np.asarray(sorted(buckets), dtype=np.float64)
        self._series: dict[tuple[str, ...], tuple[npt.NDArray[np.int64], list[float]]] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, labels: tuple[str, ...], values: npt.NDArray[np.float64]) -> None:
        total = float(values.sum())
        if math.isnan(total):  # values of events without a time: left out
            values = values[~np.isnan(values)]
            total = float(values.sum())
        if not len(values):
            return
        # bucket i counts values in (bound[i-1], bound[i]]; the last one, +Inf, those above every bound
        counts = np.bincount(np.searchsorted(self._bounds, values, side="left"), minlength=len(self._bounds) + 1)
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = (np.zeros(len(self._bounds) + 1, dtype=np.int64), [0.0])
            series[0][:] += counts
            series[1][0] += total

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        bounds = [floatToGoString(b) for b in self._bounds] + ["+Inf"]
        with self._lock:
            series = [(labels, np.cumsum(counts).tolist(), sums[0]) for labels, (counts, sums) in self._series.items()]
        for labels, cumulative, total in series:
            family.add_metric(list(labels), list(zip(bounds, cumulative, strict=True)), total)
        yield family


class PrometheusMetrics(Metrics):
    """The `Metrics` port on Prometheus, plus what the daemon reports itself: readiness
    (`set_ready`) and the admin API's requests (`http_request`). docs/metrics.md lists them all."""

    def __init__(
        self, registry: CollectorRegistry, *, clock: Clock = time.time, outputs: Sequence[str] = ()
    ) -> None:  # fmt: skip
        """``outputs``: the topics the daemon writes, whose delivery-error series start at 0."""
        self.clock = clock

        def counter(name: str, doc: str, *labels: str) -> _Children[Counter]:
            return _Children(Counter(f"{PREFIX}_{name}", doc, labels, registry=registry))

        def gauge(name: str, doc: str, *labels: str) -> _Children[Gauge]:
            return _Children(Gauge(f"{PREFIX}_{name}", doc, labels, registry=registry))

        def histogram(name: str, doc: str, buckets: Sequence[float], *labels: str) -> _Children[Histogram]:
            return _Children(Histogram(f"{PREFIX}_{name}", doc, labels, registry=registry, buckets=buckets))

        # the serve side
        self._consumed = counter("records_consumed_total", "Records read from Kafka.", "topic")
        self._consumer_lag = gauge(
            "consumer_lag_records", "Records of a partition not read yet (librdkafka's end offset, each second).",
            "topic", "partition",
        )  # fmt: skip
        self._predictions = counter("predictions_total", "Predictions written.", "group", "route")
        self._latency = BatchHistogram(
            f"{PREFIX}_prediction_latency_seconds", "Event time to prediction time, per prediction.",
            ("group", "route"), LATENCY_BUCKETS, registry,
        )  # fmt: skip
        self._serve_s = histogram(
            "serve_duration_seconds", "Time to decode, predict and encode one micro-batch.", STEP_BUCKETS, "group"
        )
        self._batch_records = histogram(
            "serve_batch_records", "Records (raw messages) in one served micro-batch.", SIZE_BUCKETS, "group"
        )
        self._dead_letters = counter("dead_letters_total", "Records sent to the dead-letter topic.", "reason")
        self._flush_s = Histogram(
            f"{PREFIX}_sink_flush_duration_seconds", "Time the sink waited for the broker to acknowledge a batch.",
            registry=registry, buckets=STEP_BUCKETS,
        )  # fmt: skip
        self._delivery_errors = counter(
            "delivery_errors_total", "Messages the broker refused or that were refused before sending.", "topic"
        )
        # who serves
        self._serving = Info(f"{PREFIX}_serving", "The version serving each route (value 1).", ("group", "route"),
                             registry=registry)  # fmt: skip
        self._model_age = Gauge(
            f"{PREFIX}_serving_model_age_seconds", "Time since the route's version began to serve (a champion: "
            "since its promotion).", ("group", "route"), registry=registry,
        )  # fmt: skip
        self._canary_share = gauge("canary_share_ratio", "Share of keys the canary serves.", "group")
        # the train side
        self._learned = counter("examples_learned_total", "Labelled examples learned.", "group", "model")
        self._learn_s = histogram(
            "learn_duration_seconds", "Time a model took to learn one job.", STEP_BUCKETS, "group", "model"
        )
        self._lane_lag = gauge("lane_lag_batches", "Labelled batches waiting for a model to learn them.",
                               "group", "model")  # fmt: skip
        self._skipped = counter(
            "batches_skipped_total", "Labelled batches a model skipped because it fell too far behind.",
            "group", "model",
        )  # fmt: skip
        self._skipped_seen: dict[tuple[str, str], int] = {}
        self._accuracy = gauge("rolling_accuracy_ratio", "A model's rolling prequential accuracy.", "group", "model")
        self._pending_labels = gauge("pending_labels", "Labels waiting for their event.", "group")
        self._pending_events = gauge("pending_events", "Events waiting for their label.", "group")
        self._decisions = counter("decisions_total", "Promoter decisions.", "group", "action")
        self._vote_weight = gauge("vote_weight_ratio", "A member's weight in the group's vote.", "group", "model")
        self._vote_choice = gauge(
            "vote_choice", "1 for what serves the vote's route: model=\"vote\", or the one member the guard chose.",
            "group", "model",
        )  # fmt: skip
        self._voters: dict[str, set[str]] = {}
        self._quarantines = counter(
            "quarantine_total", "Label quarantines by what happened: engaged, cleared, released.", "group", "action"
        )
        self._held = gauge("quarantine_held_examples", "Labelled examples the quarantine holds back now.", "group")
        # operators
        self._commands = counter("commands_total", "Operators' commands read, by outcome.", "group", "kind", "outcome")
        self._paused = gauge("paused_models", "Candidates whose learning is paused.", "group")
        self._frozen = gauge("decisions_frozen", "1 while the group's decisions are frozen.", "group")
        self._ceiling = Gauge(
            f"{PREFIX}_canary_ceiling_ratio", "The canary's share ceiling set by an operator (absent: none).",
            ("group",), registry=registry,
        )  # fmt: skip
        self._ready = Gauge(f"{PREFIX}_ready", "1 when the daemon is ready (/readyz answers 200).", registry=registry)
        self._http = counter("http_requests_total", "Admin API requests.", "method", "route", "status")
        self._http_s = histogram(
            "http_request_duration_seconds", "Admin API request durations.", Histogram.DEFAULT_BUCKETS, "method",
            "route",
        )  # fmt: skip
        # Counters of rare events start at 0 where their labels are known, so that the first one is
        # an increase Prometheus sees (and the alerts' series exist before it): every dead-letter
        # reason and output topic now, a group's decisions as its train step starts (`controlled`),
        # a model's skipped batches as it first learns (`learned`).
        for reason in DeadLetterReason:
            self._dead_letters(reason.value)
        for topic in outputs:
            self._delivery_errors(topic)

    # -- the serve side ------------------------------------------------------------------------

    def consumed(self, topic: str, n: int) -> None:
        self._consumed(topic).inc(n)

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        self._consumer_lag(topic, str(partition)).set(lag)

    def served(self, group: str, route: str, n: int, latency_s: float) -> None:
        # latency_s (the mean) is not used: prediction_latencies has every value
        self._predictions(group, route).inc(n)

    def prediction_latencies(self, group: str, route: str, latencies_s: npt.NDArray[np.float64]) -> None:
        self._latency.observe_many((group, route), latencies_s)

    def batch_served(self, group: str, records: int, serve_s: float) -> None:
        self._serve_s(group).observe(serve_s)
        self._batch_records(group).observe(records)

    def dead_lettered(self, reason: str, n: int) -> None:
        self._dead_letters(reason).inc(n)

    def flushed(self, flush_s: float) -> None:
        self._flush_s.observe(flush_s)

    def delivery_failed(self, topic: str, n: int) -> None:
        self._delivery_errors(topic).inc(n)

    # -- who serves ----------------------------------------------------------------------------

    def serving(self, group: str, route: str, version: str | None, since_s: float) -> None:
        if version is None:  # the route is off (remove() of an absent series does nothing)
            self._serving.remove(group, route)
            self._model_age.remove(group, route)
            return
        self._serving.labels(group, route).info({"version": version})
        clock = self.clock
        self._model_age.labels(group, route).set_function(lambda: max(clock() - since_s, 0.0))

    def canary_share(self, group: str, share: float) -> None:
        self._canary_share(group).set(share)

    # -- the train side ------------------------------------------------------------------------

    def learned(self, group: str, model: str, n: int, learn_s: float, lag_batches: int) -> None:
        self._skipped(group, model)  # its series, at 0 until `reported` counts a skip
        self._learned(group, model).inc(n)
        self._learn_s(group, model).observe(learn_s)
        self._lane_lag(group, model).set(lag_batches)

    def reported(self, report: ModelReport) -> None:
        group, model = report.group, report.model
        if report.rolling_accuracy is not None:
            self._accuracy(group, model).set(report.rolling_accuracy)
        self._lane_lag(group, model).set(report.lag_batches)
        # The report carries a running total; a smaller one is a new lane (or a restart): counted anew.
        seen = self._skipped_seen.get((group, model), 0)
        total = report.skipped_batches_total
        if total != seen:
            self._skipped(group, model).inc(total - seen if total > seen else total)
            self._skipped_seen[group, model] = total
        self._pending_labels(group).set(report.pending_labels)
        self._pending_events(group).set(report.pending_features)

    def forgot(self, group: str, model: str) -> None:
        """The model's gauges go (its counters stay: a rate over them ends by itself)."""
        for gauge in (self._accuracy, self._lane_lag):
            gauge.remove(group, model)

    def decided(self, group: str, action: str) -> None:
        self._decisions(group, action).inc()

    def voted(self, group: str, weights: Mapping[str, float], choice: str) -> None:
        before = self._voters.get(group, set())
        for model in before - set(weights) - {choice}:
            self._vote_weight.remove(group, model)
        for model, weight in weights.items():
            self._vote_weight(group, model).set(weight)
        for model in (before | {"vote"}) - {choice if weights else ""}:  # what serves no more
            self._vote_choice.remove(group, model)
        if weights:
            self._vote_choice(group, choice).set(1)
        self._voters[group] = set(weights) | {choice}

    def quarantined(self, group: str, *, action: str | None = None, held: int | None = None) -> None:
        for known in QUARANTINE_ACTIONS:  # rare: their series start at 0
            self._quarantines(group, known)
        if action is not None:
            self._quarantines(group, action).inc()
        if held is not None:
            self._held(group).set(held)

    # -- operators and the daemon --------------------------------------------------------------

    def commanded(self, group: str, kind: str, outcome: str) -> None:
        self._commands(group, kind, outcome).inc()

    def controlled(self, group: str, *, paused: int, frozen: bool, canary_ceiling: float | None) -> None:
        for action in DECISION_ACTIONS:  # called as the group's train step starts: its decisions count from 0
            self._decisions(group, action)
        self._paused(group).set(paused)
        self._frozen(group).set(1 if frozen else 0)
        if canary_ceiling is not None:
            self._ceiling.labels(group).set(canary_ceiling)
        else:
            self._ceiling.remove(group)

    def set_ready(self, ready: bool) -> None:
        """Whether the daemon is ready (a daemon without its admin API sets it as it starts)."""
        self._ready.set(1 if ready else 0)

    def ready_from(self, ready: Callable[[], bool]) -> None:
        """Read readiness at each scrape from ``ready`` (the admin API's `Readiness`), so that the
        gauge is never stale when nothing probes /readyz."""
        self._ready.set_function(lambda: 1.0 if ready() else 0.0)

    def http_request(self, method: str, route: str, status: int, duration_s: float) -> None:
        """One admin API request. ``route`` is the matched route's template (``/groups/{group}``),
        never the path a client sent; an unmatched request is ``"unmatched"``. Methods outside
        the usual ones count as ``OTHER``, statuses outside 100 to 599 as ``0``."""
        method = method if method in HTTP_METHODS else "OTHER"
        code = str(status) if 100 <= status <= 599 else "0"
        self._http(method, route, code).inc()
        self._http_s(method, route).observe(duration_s)


class ServingWatch:
    """Tells ``metrics`` who serves each route whenever the board's table changes (the board's
    ``on_change``): a champion's time comes from the registry (when it was promoted, so its age
    survives a restart), a canary's or a live fork's is when this process first saw it serve."""

    ROUTES = ("champion", "canary", "live")

    def __init__(self, metrics: Metrics, registry: Registry, clock: Clock = time.time) -> None:
        self.metrics = metrics
        self.registry = registry
        self.clock = clock
        self._serving: dict[tuple[str, str], str | None] = {}

    def __call__(self, table: ServingTable) -> None:
        try:
            self._watch(table)
        except Exception:  # who serves has changed already: a gauge that could not follow must not undo it
            log.exception("group %s: the serving metrics could not follow table %d", table.group, table.seq)

    def _watch(self, table: ServingTable) -> None:
        canary = table.canary if table.canary is not None and table.canary_share > 0 else None
        versions = dict(zip(self.ROUTES, (table.champion, canary, table.fresh), strict=True))
        for route, served in versions.items():
            version = served.version if served is not None else None
            if self._serving.get((table.group, route)) == version:
                continue  # a live fork refreshed, or the same champion in a new table
            self._serving[table.group, route] = version
            since = self._promoted_s(version) if route == "champion" and version is not None else None
            self.metrics.serving(table.group, route, version, since if since is not None else self.clock())
        self.metrics.canary_share(table.group, table.canary_share if canary is not None else 0.0)

    def _promoted_s(self, version: str) -> float | None:
        try:
            promoted_ms = self.registry.version(version).promoted_ms
        except LookupError:
            return None
        return promoted_ms / 1000 if promoted_ms is not None else None
