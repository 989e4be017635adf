"""The portfolio's bandit policy on the real broker, its members learning in thread lanes of a live
daemon: each event is served by one member (route ``bandit``, the member's version) or by the
champion; the best member takes most of the members' traffic and is promoted by the gate, the
wrong one never."""

from __future__ import annotations

import collections

import pytest

from daemon.registry import SqliteRegistry
from daemon.workload import Workload, WorkloadSpec
from tests.integration.conftest import SettingsFactory
from tests.integration.test_lifecycle_kafka import _run_live

pytestmark = pytest.mark.kafka

SPEC = WorkloadSpec(n_events=8000, drift_at=8000, malformed_every=0, label_delay=100, unmatched_labels=0)
CANDIDATES = [
    {"name": "inverted", "learner": "tests.learners.factories:inverted_logreg"},
    {"name": "nb", "learner": "tests.learners.factories:gaussian_nb"},
    {"name": "good", "learner": "river-logreg"},
]


def test_the_bandit_serves_one_member_per_event_and_promotes_the_best(fresh_settings: SettingsFactory) -> None:
    settings = fresh_settings(
        runtime={"tail": True, "workers": 1, "lanes": "thread"},
        model={"candidates": CANDIDATES, "vote": {"enabled": True, "policy": "bandit", "bandit": {"ceiling": 0.6}}},
    )
    out = _run_live(settings, Workload(SPEC))
    with SqliteRegistry(settings.registry.path) as registry:
        names = {v.id: v.name for v in registry.versions("default")}
        decisions = registry.decisions("default")
    predictions = out["predictions"]
    assert len({p["id"] for p in predictions}) == SPEC.n_events
    assert {p["route"] for p in predictions} == {"champion", "bandit"}
    bandit = [p for p in predictions if p["route"] == "bandit"]
    assert all("votes" not in p for p in bandit)
    late = collections.Counter(names[p["version"]] for p in bandit[len(bandit) // 2 :])
    assert late["good"] > late["nb"] + late["inverted"], late

    promoted = [d for d in decisions if d.action == "promote" and d.previous is not None]
    assert promoted and "the bandit gate" in promoted[0].reason, [d.reason for d in promoted]
    assert names[promoted[0].version] == "good"
    assert not [d for d in promoted if names[d.version] == "inverted"]
    shares = [e["shares"] for e in out["model_events"] if e["type"] == "vote" and "shares" in e]
    assert shares and sum(shares[-1].values()) == pytest.approx(0.6, abs=1e-3)
