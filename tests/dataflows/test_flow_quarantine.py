"""The label quarantine through the whole flow in memory (inline lanes: deterministic): a burst of
flipped labels is held back (on the quarantine topic, with its offsets) and dropped once it is
over, nothing is promoted meanwhile and serving stays as good as before; a real change in the data
(the classes swap) is released as soon as a copy learning it beats serving, and the group adapts;
an operator's release learns what is held."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson

from daemon.registry import SqliteRegistry
from daemon.workload import CLASSES, FEATURES, Workload, WorkloadSpec
from dataflows import CandidateSpec, FlowConfig, GateSpec
from dataflows.config import QuarantineSpec
from dataflows.decode import FeatureSchema
from learners import LearnerSpec
from tests.dataflows.test_flow_inmemory import TOPICS, run_workload

QUARANTINE_TOPIC = "quarantine"
TOPICS_Q = dataclasses.replace(TOPICS, quarantine=QUARANTINE_TOPIC)
BASE = WorkloadSpec(n_events=14_000, drift_at=14_000, malformed_every=0, label_delay=100, unmatched_labels=0,
                    inline_share=0.6, delayed_share=0.4)  # fmt: skip


def _run(tmp_path: Path, spec: WorkloadSpec, quarantine: QuarantineSpec | None) -> dict[str, Any]:
    workload = Workload(spec)
    config = FlowConfig(
        "unused:9092", TOPICS_Q, FeatureSchema(list(FEATURES), list(CLASSES)), LearnerSpec("river-logreg"),
        candidates=(CandidateSpec("fork"),), gate=GateSpec(threaded=False), batch_max_size=200,
        quarantine=quarantine,
    )  # fmt: skip
    messages = run_workload(config, workload, tmp_path)
    with SqliteRegistry(tmp_path) as registry:
        decisions = registry.decisions("default")
    return {
        "workload": workload,
        "predictions": [orjson.loads(m.value) for m in messages if m.topic == TOPICS.predictions],
        "quarantine": [orjson.loads(m.value) for m in messages if m.topic == QUARANTINE_TOPIC],
        # the predictions served when each record was sent: where in the stream it happened
        "at": _positions(messages),
        "decisions": decisions,
    }


def _positions(messages: list[Any]) -> list[tuple[int, dict[str, Any]]]:
    served, out = 0, []
    for m in messages:
        if m.topic == TOPICS.predictions:
            served += 1
        elif m.topic in (QUARANTINE_TOPIC, TOPICS.model_events):
            out.append((served, orjson.loads(m.value)))
    return out


def _accuracy(run: dict[str, Any], first: int, last: int) -> float:
    workload = run["workload"]
    at = {event: i for i, event in enumerate(workload.order)}
    right = [
        CLASSES[workload.truth[p["id"]]] == p["prediction"] for p in run["predictions"] if first <= at[p["id"]] < last
    ]
    return float(sum(right)) / len(right)


def _event_offsets(record: dict[str, Any]) -> list[int]:
    return [o for topic, _, first, last in record["offsets"] if topic == TOPICS.events for o in (first, last)]


def test_a_label_flip_burst_is_held_then_dropped_and_nothing_is_promoted(tmp_path: Path) -> None:
    spec = dataclasses.replace(BASE, noisy_from=6000, noisy_until=9000, noisy_share=0.35)
    run = _run(tmp_path, spec, QuarantineSpec())
    records = run["quarantine"]
    actions = [r["action"] for r in records]
    assert actions[0] == "engaged" and actions.count("engaged") == 1, actions
    assert "released" not in actions and actions[-1] == "cleared", actions
    engaged = records[0]
    assert engaged["reason"].startswith("loss spike")
    assert 6000 <= max(_event_offsets(engaged)) < 7000, "engaged before the burst, or late"
    held = [o for r in records if r["action"] in ("engaged", "held") for o in _event_offsets(r)]
    assert max(held) < 9000 + 1000, "held long after the burst"
    assert records[-1]["examples"] == sum(r["examples"] for r in records if r["action"] in ("engaged", "held"))
    # nothing decided while the labels were held back
    positions = [(n, r) for n, r in run["at"] if r["type"] in ("quarantine", "decision")]
    start = next(n for n, r in positions if r["type"] == "quarantine" and r["action"] == "engaged")
    end = next(n for n, r in positions if r["type"] == "quarantine" and r["action"] == "cleared")
    assert not [r for n, r in positions if r["type"] == "decision" and start <= n <= end]
    before, during = _accuracy(run, 3000, 6000), _accuracy(run, 6000, 9000)
    assert during >= before - 0.02, (before, during)


def test_without_the_quarantine_the_burst_is_learned_and_judged(tmp_path: Path) -> None:
    """What the quarantine spares: the same burst, learned, teaches the fork the flipped labels and
    its trial judges it on them — it is refused (and waits twice as long for its next trial)."""
    spec = dataclasses.replace(BASE, noisy_from=6000, noisy_until=9000, noisy_share=0.35)
    run = _run(tmp_path, spec, None)
    assert run["quarantine"] == []
    during = [r for n, r in run["at"] if r["type"] == "decision" and 6000 <= n < 9500]
    assert [r["action"] for r in during] == ["refuse"], during


def test_a_change_in_the_data_is_released_once_a_copy_learns_it(tmp_path: Path) -> None:
    spec = dataclasses.replace(BASE, drift_at=6000, flip_after_drift=True)  # the classes swap
    run = _run(tmp_path, spec, QuarantineSpec())
    records = run["quarantine"]
    actions = [r["action"] for r in records]
    assert actions[0] == "engaged" and "released" in actions, actions
    released = records[actions.index("released")]
    assert released["reason"].startswith("learnable"), released
    held = [o for r in records[: actions.index("released")] for o in _event_offsets(r)]
    assert max(held) < 6000 + 1500, "released late"
    assert released["examples"] == sum(r["examples"] for r in records[: actions.index("released")])
    assert any(d.action == "promote" and d.previous is not None for d in run["decisions"]), "the group did not adapt"
    assert _accuracy(run, 9000, 14_000) > 0.85
