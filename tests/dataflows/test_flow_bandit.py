"""The portfolio's bandit policy through the whole flow in memory (inline lanes: deterministic):
each event on the champion's route is served by one member on a sticky share of the keys (route
``bandit``, the member's version) or by the champion; the shares follow which member is best, and
the gate promotes the clearly best member — not a worse one — while the members' own trials take no
evidence. The gate is copied into snapshots."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import orjson
import pytest

from daemon.registry import SqliteRegistry
from daemon.workload import CLASSES, FEATURES, Workload, WorkloadSpec
from dataflows import CandidateSpec, FlowConfig, GateSpec
from dataflows.config import BanditSpec, VoteSpec
from dataflows.decode import FeatureSchema
from learners import LearnerSpec
from tests.dataflows.test_flow_inmemory import TOPICS, run_workload

SPEC = WorkloadSpec(n_events=8000, drift_at=8000, malformed_every=0, label_delay=100, unmatched_labels=0)
CANDIDATES = (
    CandidateSpec("inverted", LearnerSpec("tests.learners.factories:inverted_logreg")),  # wrong on purpose
    CandidateSpec("slow", LearnerSpec("tests.learners.factories:gaussian_nb")),  # a few points worse here
    CandidateSpec("good", LearnerSpec("river-logreg")),
)


def _run(tmp_path: Path, bandit: BanditSpec) -> dict[str, Any]:
    workload = Workload(SPEC)
    config = FlowConfig(
        "unused:9092", TOPICS, FeatureSchema(list(FEATURES), list(CLASSES)), LearnerSpec("river-logreg"),
        candidates=CANDIDATES, gate=GateSpec(threaded=False), batch_max_size=200,
        vote=VoteSpec(bandit=bandit),
    )  # fmt: skip
    messages = run_workload(config, workload, tmp_path)
    with SqliteRegistry(tmp_path) as registry:
        names = {v.id: v.name for v in registry.versions("default")}
        decisions = registry.decisions("default")
    return {
        "predictions": [orjson.loads(m.value) for m in messages if m.topic == TOPICS.predictions],
        "events": [orjson.loads(m.value) for m in messages if m.topic == TOPICS.model_events],
        "names": names,
        "decisions": decisions,
    }


@pytest.mark.parametrize("allocation", ["thompson", "ucb"])
def test_one_member_serves_each_event_and_the_best_is_promoted(tmp_path: Path, allocation: str) -> None:
    run = _run(tmp_path, BanditSpec(allocation=allocation, ceiling=0.6, min_samples=300))
    predictions, names = run["predictions"], run["names"]
    assert len({p["id"] for p in predictions}) == SPEC.n_events
    routes = collections.Counter(p["route"] for p in predictions)
    assert set(routes) == {"champion", "bandit"}, routes
    bandit = [p for p in predictions if p["route"] == "bandit"]
    assert all("votes" not in p and names[p["version"]] in ("inverted", "slow", "good") for p in bandit)
    # the members' share of the events is about the ceiling once they serve
    late = predictions[len(predictions) // 2 :]
    assert 0.45 < sum(p["route"] == "bandit" for p in late) / len(late) < 0.75
    # the best member takes the most of the bandit's traffic; the wrong one keeps its floor at most
    served = collections.Counter(names[p["version"]] for p in bandit)
    assert served["good"] > 3 * (served["slow"] + served["inverted"]), served

    promoted = [d for d in run["decisions"] if d.action == "promote" and d.previous is not None]
    assert promoted, "the bandit promoted nothing"
    assert "the bandit gate" in promoted[0].reason and names[promoted[0].version] == "good", promoted[0].reason
    assert promoted[0].evidence["winner"] == "good"
    assert not [d for d in promoted if names[d.version] == "inverted"]
    # no candidate's own trial concluded: the gate is their trial
    assert not [e for e in run["events"] if e["type"] == "verdict" and e["phase"] in ("passed", "failed")
                and e["model"] in ("inverted", "slow", "good")]  # fmt: skip
    # the shares are on the model-events topic with the vote's records
    shares = [e["shares"] for e in run["events"] if e["type"] == "vote" and "shares" in e]
    assert shares and set(shares[-1]) == {"inverted", "slow", "good"}
    assert sum(shares[-1].values()) == pytest.approx(0.6, abs=1e-3)
