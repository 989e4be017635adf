"""The champion/candidate lifecycle on the real broker, with a live (rate-limited) stream:
a better candidate is promoted and a worse one refused, a label-flip attack promotes nothing,
and a champion that degrades after its promotion is rolled back. Decisions are read from the
model-events topic and from the registry, with the offsets each version learned from."""

from __future__ import annotations

import collections
from typing import Any

import orjson
import pytest
from confluent_kafka import Message

from daemon.config import Settings
from daemon.kafka_client import make_producer, produce_all, read_all, read_until
from daemon.registry import SqliteRegistry
from daemon.workload import Workload, WorkloadSpec
from tests.integration.conftest import BackgroundDaemon, SettingsFactory

pytestmark = pytest.mark.kafka

RATE = 4000  # messages/s: a live stream (a replay at full speed is served before anyone learns it)


def _promoted(msgs: list[Message]) -> bool:
    """A candidate was promoted (not just the first champion installed)."""
    bodies = (orjson.loads(m.value() or b"{}") for m in msgs)
    return any(b.get("type") == "decision" and b.get("action") == "promote" and b.get("previous") for b in bodies)


def _run_live(
    settings: Settings, workload: Workload, *, promotion_by: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Stream the workload through a tailing daemon; return every output once all events are
    predicted. With ``promotion_by``, the stream pauses after that many events until a candidate
    has been promoted (bounded), so that the rest is served by it."""
    k = settings.kafka
    topic = {"events": k.events_topic, "labels": k.labels_topic or k.events_topic}
    daemon = BackgroundDaemon(settings).start()
    try:
        items = list(workload.items())
        cut = len(items)
        if promotion_by is not None:
            cut = next(i for i, item in enumerate(items) if item.event_index == promotion_by)
        producer = make_producer(k.bootstrap_servers)
        produce_all(producer, ((topic[i.kind], i.key, i.value) for i in items[:cut]), RATE)
        if promotion_by is not None:
            seen = read_until(k.bootstrap_servers, [k.model_events_topic], _promoted, timeout_s=120)
            assert _promoted(seen), f"no candidate was promoted within 120 s of the first {promotion_by} events"
            produce_all(producer, ((topic[i.kind], i.key, i.value) for i in items[cut:]), RATE)
        n = workload.spec.n_events
        read_until(k.bootstrap_servers, [k.predictions_topic], lambda msgs: len(msgs) >= n, timeout_s=120)
    finally:
        assert daemon.stop(timeout_s=60), "the daemon did not stop within 60 s of the stop request"
    assert daemon.errors == []
    out: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for m in read_all(k.bootstrap_servers, [k.predictions_topic, k.model_events_topic]):
        out[m.topic() or ""].append(orjson.loads(m.value() or b"null"))
    return {"predictions": out[k.predictions_topic], "model_events": out[k.model_events_topic]}


def _decisions(events: list[dict[str, Any]], action: str | None = None) -> list[dict[str, Any]]:
    # Model events are keyed by group: one partition, in order.
    return [e for e in events if e["type"] == "decision" and (action is None or e["action"] == action)]


def _accuracy(workload: Workload, predictions: dict[str, int], start: int, stop: int) -> float:
    ids = workload.order[start:stop]
    return sum(predictions[i] == workload.truth[i] for i in ids) / len(ids)


@pytest.mark.parametrize("lanes", ["thread", "process"])
def test_a_better_candidate_is_promoted_and_a_worse_one_refused(fresh_settings: SettingsFactory, lanes: str) -> None:
    candidates = [
        {"name": "good", "learner": "river-logreg"},
        {"name": "bad", "learner": "tests.learners.factories:inverted_logreg"},
    ]
    runtime = {"tail": True, "workers": 2, "lanes": lanes}
    settings = fresh_settings(model={"candidates": candidates}, runtime=runtime)
    k = settings.kafka
    workload = Workload(WorkloadSpec(n_events=8000, drift_at=8000, malformed_every=0, unmatched_labels=0))
    # A lane's process takes seconds to start, and learns at a lower priority than serving: the
    # stream waits for the first promotion after 4,000 events, so the promoted model serves the rest.
    out = _run_live(settings, workload, promotion_by=4000)

    events = out["model_events"]
    promoted = _decisions(events, "promote")
    refused = _decisions(events, "refuse")
    assert promoted[0]["version"] == "default/1" and "untrained" in promoted[0]["reason"]  # the first champion
    assert len(promoted) > 1, "no candidate was promoted"
    first = promoted[1]
    assert first["previous"] == "default/1"
    assert "passed its shadow trial" in first["reason"]
    assert first["evidence"]["lower"] > 0  # the always-valid interval lies above zero
    with SqliteRegistry(settings.registry.path) as registry:
        good = registry.version(first["version"])
        bad_versions = [v for v in registry.versions("default") if v.name == "bad"]
        assert good.name == "good" and good.promoted_ms == first["ts_ms"]
        assert good.checkpoint_sha256 is not None  # what serves can be loaded again
        assert good.samples > 0
        assert good.ranges and {r.topic for r in good.ranges} <= {k.events_topic, k.labels_topic}
        assert all(r.first <= r.last for r in good.ranges)
        recorded = [d for d in registry.decisions("default") if d.action == "promote"]
        assert [(d.version, d.reason) for d in recorded] == [(d["version"], d["reason"]) for d in promoted]
        assert [v["phase"] for v in registry.verdicts(first["version"])][-1] == "passed"
        # The inverted candidate never served, and was refused with a reason, in the registry too.
        assert bad_versions and all(v.status in ("retired", "candidate") for v in bad_versions)
        assert all(v.promoted_ms is None for v in bad_versions)
        refused_in_registry = {d.version for d in registry.decisions("default") if d.action == "refuse"}
    bad_ids = {v.id for v in bad_versions}
    assert not [d for d in promoted if d["version"] in bad_ids]
    bad_refusals = [d for d in refused if d["version"] in bad_ids]
    assert bad_refusals, "the inverted candidate was never refused"
    assert "significantly worse" in bad_refusals[0]["reason"]
    assert {d["version"] for d in bad_refusals} <= refused_in_registry
    # Every prediction names the version that made it; none was made by the bad candidate.
    served_by = collections.Counter(p["version"] for p in out["predictions"])
    assert not set(served_by) & bad_ids
    assert first["version"] in served_by


def test_a_label_flip_burst_promotes_nothing_and_served_accuracy_holds(fresh_settings: SettingsFactory) -> None:
    """30 % of the labels flipped for 4,000 events: the label quarantine holds them back (on its
    topic, with their offsets) from early in the burst until after it, and drops them; nothing is
    promoted, and the champion — frozen, trained before the attack — keeps serving as well."""
    settings = fresh_settings(runtime={"tail": True, "workers": 1})
    spec = WorkloadSpec(
        n_events=14_000, drift_at=14_000, malformed_every=0, unmatched_labels=0,
        noisy_from=9000, noisy_until=13_000, noisy_share=0.3,
    )  # fmt: skip
    workload = Workload(spec)
    out = _run_live(settings, workload)

    events = out["model_events"]
    # When did the daemon first see the attack? The first report that learned from it.
    predictions = {p["id"]: p for p in out["predictions"]}
    attack_started_ms = predictions[workload.order[spec.noisy_from]]["predicted_ts_ms"]
    promoted = _decisions(events, "promote")[1:]  # after the untrained first champion
    assert promoted and promoted[0]["ts_ms"] < attack_started_ms, "the first champion was never replaced"
    during = [d for d in promoted if d["ts_ms"] >= attack_started_ms]
    assert during == [], f"promoted during or after the attack: {during}"
    served = {i: p["prediction"] for i, p in predictions.items()}
    before = _accuracy(workload, served, spec.noisy_from - 2000, spec.noisy_from)
    attacked = _accuracy(workload, served, spec.noisy_from, spec.noisy_until)
    after = _accuracy(workload, served, spec.noisy_until, spec.n_events)
    seen = f"served accuracy before {before:.3f}, during {attacked:.3f}, after {after:.3f}"
    assert before > 0.9, seen
    assert abs(attacked - before) <= 0.02, seen
    assert abs(after - before) <= 0.02, seen

    quarantine = settings.topics().quarantine
    assert quarantine is not None
    records = [orjson.loads(m.value() or b"null") for m in read_all(settings.kafka.bootstrap_servers, [quarantine])]
    actions = [r["action"] for r in records]
    assert actions and actions[0] == "engaged" and actions.count("engaged") == 1, actions
    assert actions[-1] == "cleared" and "released" not in actions, actions
    burst_ids = set(workload.order[spec.noisy_from :])
    in_burst = sorted(p["predicted_ts_ms"] for i, p in predictions.items() if i in burst_ids)
    served_before = sum(1 for ts in in_burst if ts <= records[0]["ts_ms"])
    # a label comes up to 300 events after its event: engaged within the burst's first 1,000 labels
    assert served_before <= 1000 + spec.label_delay, f"engaged {served_before} events into the burst"
    assert records[-1]["examples"] == sum(r["examples"] for r in records if r["action"] in ("engaged", "held"))
    assert records[-1]["examples"] >= 0.5 * (spec.noisy_until - spec.noisy_from) * 0.9, "held too few labels"


def test_a_champion_that_degrades_after_promotion_is_rolled_back(fresh_settings: SettingsFactory) -> None:
    """A recurring concept: A, then B (classes swapped), then A again. The fork adapts to B and
    is promoted; the champion it replaced waits on standby; when A returns before the probation
    ends, the new champion falls behind its predecessor and is rolled back."""
    # A fork needs more evidence than the probation: else one that relearns A quickly replaces the
    # champion before its probation can fail it (which is fine, but not what this test is about).
    promotion = {"probation_samples": 6000, "min_samples": 1500}
    settings = fresh_settings(runtime={"tail": True, "workers": 1}, promotion=promotion)
    spec = WorkloadSpec(
        n_events=15_000, drift_at=6000, swap_until=9000, flip_after_drift=True, before_variant=3, after_variant=3,
        malformed_every=0, unmatched_labels=0,
    )  # fmt: skip
    workload = Workload(spec)
    out = _run_live(settings, workload)

    events = out["model_events"]
    rollbacks = _decisions(events, "rollback")
    assert rollbacks, (
        f"no rollback; decisions: {[(d['action'], d['version'], d['reason']) for d in _decisions(events)]}"
    )
    rollback = rollbacks[0]
    assert rollback["previous"] != rollback["version"]
    assert "fell behind its predecessor" in rollback["reason"]
    assert rollback["evidence"]["upper"] < 0  # significantly worse than the one restored
    predictions = {p["id"]: p for p in out["predictions"]}
    returned_ms = predictions[workload.order[9000]]["predicted_ts_ms"]  # spec.swap_until
    assert rollback["ts_ms"] >= returned_ms  # it happened after concept A came back
    # The version restored serves again; the one rolled back never serves after the decision.
    later = [p for p in out["predictions"] if p["predicted_ts_ms"] > rollback["ts_ms"] + 1000]
    assert later and rollback["previous"] not in {p["version"] for p in later}
    with SqliteRegistry(settings.registry.path) as registry:
        failed = registry.version(rollback["previous"])
        assert failed.status == "retired" and failed.retired_ms == rollback["ts_ms"]
        assert [d.action for d in registry.decisions("default")].count("rollback") == len(rollbacks)
    # And the served accuracy on concept A's return recovers.
    served = {i: p["prediction"] for i, p in predictions.items()}
    end = _accuracy(workload, served, spec.n_events - 2000, spec.n_events)
    assert end > 0.9, f"served accuracy at the end {end:.3f}"


def test_live_refresh_serves_the_forks_copies_through_a_drift_and_loses_nothing(
    fresh_settings: SettingsFactory,
) -> None:
    """A refresh fork with live refresh: between its (rare) promotions its lane's copies serve the
    champion's route, named by the fork's version and the route `live`; every event is served once,
    and after a drift the served accuracy comes back."""
    settings = fresh_settings(
        model={"candidates": [{"name": "fork", "gate": "refresh"}]},
        promotion={"refresh_samples": 5000, "live_refresh": True},
        runtime={"tail": True, "workers": 1},
    )
    spec = WorkloadSpec(n_events=8000, drift_at=4000, malformed_every=0, unmatched_labels=0)
    workload = Workload(spec)
    out = _run_live(settings, workload)

    predictions = out["predictions"]
    assert len(predictions) == len({p["id"] for p in predictions}) == spec.n_events
    routes = collections.Counter(p["route"] for p in predictions)
    live = [p for p in predictions if p["route"] == "live"]
    assert live, f"no prediction came from the fork's copies: {dict(routes)}"
    refused = {d["version"] for d in _decisions(out["model_events"], "refuse")}
    with SqliteRegistry(settings.registry.path) as registry:
        for version in {p["version"] for p in live}:
            info = registry.version(version)
            assert info.name == "fork" and info.samples > 0, info  # a fork's version, which learned
            assert version not in refused
    served = {p["id"]: p["prediction"] for p in predictions}
    end = _accuracy(workload, served, spec.n_events - 2000, spec.n_events)
    assert end > 0.9, f"served accuracy over the last 2,000 events {end:.3f}; routes {dict(routes)}"
