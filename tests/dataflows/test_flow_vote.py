"""The portfolio's vote through the whole flow in memory (inline lanes: deterministic): the
candidates' latest states serve on the vote's route from their first learned batch on, each
prediction names registry versions and weights that sum to 1, the gates still promote, the
metrics follow the weights, and on a stream with a drift the vote serves better than the
champion-only default with the same candidates, most of all just after the drift."""

from __future__ import annotations

import collections
import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main
from prometheus_client import CollectorRegistry

from daemon.metrics import PrometheusMetrics
from daemon.registry import SqliteRegistry
from daemon.wiring import local_deps
from daemon.workload import CLASSES, FEATURES, Workload, WorkloadSpec
from dataflows import CandidateSpec, FlowConfig, GateSpec
from dataflows.config import VoteSpec
from dataflows.decode import FeatureSchema
from dataflows.records import SinkItem, sink_messages
from learners import LearnerSpec
from tests.dataflows.test_flow_inmemory import TOPICS, _flow, _messages

SPEC = WorkloadSpec(n_events=8000, drift_at=4000, malformed_every=0, label_delay=100, unmatched_labels=0)
CANDIDATES = (CandidateSpec("fork"), CandidateSpec("tree", LearnerSpec("river-hoeffding")))
EVENTS: dict[bool, list[dict[str, Any]]] = {}  # the last run's model events, with and without a vote


def _run(tmp_path: Path, vote: VoteSpec | None) -> tuple[Workload, list[dict[str, Any]], CollectorRegistry]:
    """The workload through the flow: its predictions (and, in `EVENTS`, its model events)."""
    workload = Workload(SPEC)
    config = FlowConfig(
        "unused:9092", TOPICS, FeatureSchema(list(FEATURES), list(CLASSES)), LearnerSpec("river-logreg"),
        candidates=CANDIDATES, gate=GateSpec(threaded=False), batch_max_size=200, vote=vote,
    )  # fmt: skip
    items: list[SinkItem] = []
    registry = CollectorRegistry()
    deps = local_deps(TestingSource(_messages(workload), batch_size=200), TestingSink(items), tmp_path,
                      metrics=PrometheusMetrics(registry))  # fmt: skip
    run_main(_flow(config, deps))
    messages = sink_messages(items)
    predictions = [orjson.loads(m.value) for m in messages if m.topic == TOPICS.predictions]
    EVENTS[vote is not None] = [orjson.loads(m.value) for m in messages if m.topic == TOPICS.model_events]
    return workload, predictions, registry


def _accuracy(workload: Workload, predictions: list[dict[str, Any]], first: int = 0, last: int = 10**9) -> float:
    at = {event: i for i, event in enumerate(workload.order)}
    right: list[bool] = [
        CLASSES[workload.truth[p["id"]]] == p["prediction"] for p in predictions if first <= at[p["id"]] < last
    ]
    return float(sum(right)) / len(right)


def test_the_vote_serves_from_the_members_first_batch_and_beats_the_default(tmp_path: Path) -> None:
    workload, predictions, metrics = _run(tmp_path / "vote", VoteSpec())
    assert sorted(p["id"] for p in predictions) == sorted(workload.order)
    routes = [p["route"] for p in predictions]
    first_vote = routes.index("vote")
    assert set(routes[first_vote:]) == {"vote"}, "the champion served again once the vote could"
    assert first_vote <= 2 * 200, "the vote waited longer than the members' first learned batch"
    with SqliteRegistry(tmp_path / "vote") as registry:
        known = {v.id: v.name for v in registry.versions("default")}
        promoted = [d for d in registry.decisions("default") if d.action == "promote" and d.previous is not None]
    for p in predictions[first_vote:]:
        assert set(p["votes"]) <= set(known) and sum(p["votes"].values()) == pytest.approx(1.0, abs=1e-3)
        assert p["version"] in p["votes"]
    assert {known[v] for p in predictions for v in p.get("votes", {})} == {"fork", "tree"}
    assert promoted, "the gates stopped promoting under the vote"
    weights = {s.labels["model"]: s.value for f in metrics.collect() for s in f.samples
               if s.name == "headwater_vote_weight_ratio"}  # fmt: skip
    assert set(weights) == {"fork", "tree"} and sum(weights.values()) == pytest.approx(1.0)

    # the weights on the model-events topic: by member, with the versions each held, as they moved
    records = [e for e in EVENTS[True] if e["type"] == "vote"]
    assert 3 <= len(records) < len(predictions) / 100, "a vote record per weight change, not per batch"
    for r in records:
        assert set(r["weights"]) == set(r["versions"]) == {"fork", "tree"} and set(r["versions"].values()) <= set(known)
        assert sum(r["weights"].values()) == pytest.approx(1.0, abs=1e-3) and r["choice"] in ("vote", "fork", "tree")
        assert set(r["accuracy"]) == {"fork", "tree", "vote"}
    for a, b in itertools.pairwise(records):  # each says something new: the lead, the choice, or a weight moved
        moved = max(abs(a["weights"][m] - b["weights"][m]) for m in a["weights"])
        lead_a, lead_b = (max(r["weights"], key=r["weights"].__getitem__) for r in (a, b))
        assert lead_a != lead_b or a["choice"] != b["choice"] or moved >= 0.05 - 1e-3, (a, b)

    default_workload, default_predictions, _ = _run(tmp_path / "default", None)
    assert not [e for e in EVENTS[False] if e["type"] == "vote"]
    assert collections.Counter(p["route"] for p in default_predictions) == {"champion": len(default_predictions)}
    served, default = _accuracy(workload, predictions), _accuracy(default_workload, default_predictions)
    assert served > default + 0.01, (served, default)
    drift = SPEC.drift_at
    after, default_after = (_accuracy(w, p, drift, drift + 1000) for w, p in
                            ((workload, predictions), (default_workload, default_predictions)))  # fmt: skip
    assert after > default_after + 0.03, (after, default_after)
