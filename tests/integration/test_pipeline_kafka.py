"""The whole pipeline on the real broker: every event is accounted for, and the model recovers
from a concept drift."""

from __future__ import annotations

import base64
import collections
import time
from typing import Any

import orjson
import pytest
from confluent_kafka import Message

from daemon.config import Settings
from daemon.kafka_client import make_producer, produce_all, read_all, read_until
from daemon.workload import Workload, WorkloadSpec
from dataflows.kafka_io import DeliveryError, ReliableKafkaSink
from dataflows.records import OVERSIZED_KEEP_BYTES, DeadLetterReason, KafkaOut
from tests.integration.conftest import BackgroundDaemon, SettingsFactory

pytestmark = pytest.mark.kafka

PHASE = 1500


def _produce(
    settings: Settings, workload: Workload, rate: float | None = None
) -> collections.Counter[tuple[bytes | None, str]]:
    """Produce the workload (at ``rate`` messages/s if given); return the malformed payloads with
    the reason each must get."""
    k = settings.kafka
    topic = {"events": k.events_topic, "labels": k.labels_topic or k.events_topic}
    items = list(workload.items())
    produce_all(make_producer(k.bootstrap_servers), ((topic[i.kind], i.key, i.value) for i in items), rate)
    return collections.Counter(
        (_as_dead_lettered(i.value, i.expect), i.expect.value) for i in items if i.expect is not None
    )


def _as_dead_lettered(value: bytes | None, reason: DeadLetterReason) -> bytes | None:
    """What a dead letter keeps of the original: all of it, but only the head of an oversized one."""
    if value is not None and reason is DeadLetterReason.OVERSIZED:
        return value[:OVERSIZED_KEEP_BYTES]
    return value


def _outputs(settings: Settings, want_predictions: int, want_dead: int) -> dict[str, list[dict[str, Any]]]:
    k = settings.kafka

    def done(msgs: list[Message]) -> bool:
        counts = collections.Counter(m.topic() for m in msgs)
        return counts[k.predictions_topic] >= want_predictions and counts[k.dead_letter_topic] >= want_dead

    topics = [k.predictions_topic, k.dead_letter_topic, k.model_events_topic]
    read_until(k.bootstrap_servers, topics, done, timeout_s=60)  # wait until everything expected is there
    msgs = read_all(k.bootstrap_servers, topics)  # then read all of it, duplicates included
    by_topic: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for m in msgs:
        by_topic[m.topic() or ""].append(orjson.loads(m.value() or b"null"))
    return {
        "predictions": by_topic[k.predictions_topic],
        "dead": by_topic[k.dead_letter_topic],
        "model_events": by_topic[k.model_events_topic],
    }


def _accuracy(workload: Workload, predictions: dict[str, int], start: int, stop: int) -> float:
    ids = workload.order[start:stop]
    return sum(predictions[i] == workload.truth[i] for i in ids) / len(ids)


@pytest.mark.parametrize(
    ("learner", "workers", "flip", "drop"),
    [
        ("river-logreg", 1, False, 0.05),  # SEA's threshold moves: a band of the space changes class
        ("river-logreg", 2, True, 0.15),  # the classes swap: learners with slower steps still show it clearly
        ("torch-mlp", 2, True, 0.15),
        ("moa-arf", 2, True, 0.15),  # MOA's forest of 10 trees, in the JVM
    ],
)
def test_every_event_is_predicted_or_dead_lettered_and_accuracy_recovers_after_drift(
    fresh_settings: SettingsFactory, learner: str, workers: int, flip: bool, drop: float
) -> None:
    # A live stream, not a replay of a full topic: models learn beside serving, and a replay at full
    # speed is served long before the candidates have learned it (and earned promotion).
    # Every labelled example must be learned here: a slower learner's lane may fall 64 small jobs
    # behind as the stream starts (torch-mlp did at its first promotion in 4 runs of 6 one day, with
    # the label quarantine on or off) and skip them: skipping is tested elsewhere, not here.
    slow = {} if learner.startswith("river") else {"max_lag_batches": 4096, "max_lag_s": 120.0}
    settings = fresh_settings(model={"learner": learner}, runtime={"tail": True, "workers": workers}, promotion=slow)
    spec = WorkloadSpec(n_events=16_000, drift_at=8_000, malformed_every=300, label_delay=200, flip_after_drift=flip)
    workload = Workload(spec)
    daemon = BackgroundDaemon(settings).start()
    # torch-mlp and MOA's forest learn more slowly than River on these 2 cores: a slower stream keeps
    # their lanes live. Serving no longer waits for the train step, so at 2,000/s a torch fork's
    # first promotion (about 1,800 paired examples) came after the last 1,000 events before the
    # drift in half the runs, a MOA forest's in some; at 1,000/s in none of 6.
    malformed = _produce(settings, workload, rate=4000 if learner.startswith("river") else 1000)
    n_event_messages = spec.n_events + workload.n_malformed_events
    _outputs(settings, spec.n_events, sum(malformed.values()) - spec.unmatched_labels)
    assert daemon.stop(timeout_s=60), "the daemon did not stop within 60 s of the stop request"
    assert daemon.errors == []

    out = _outputs(settings, spec.n_events, sum(malformed.values()))
    predictions = out["predictions"]
    dead = out["dead"]

    # Exactly one prediction per valid event, each naming the model that made it.
    ids = [p["id"] for p in predictions]
    assert len(ids) == len(set(ids)) == spec.n_events
    assert set(ids) == set(workload.truth)
    assert all(p["version"].startswith("default/") and p["route"] == "champion" for p in predictions)
    assert all(p["group"] == "default" and len(p["proba"]) == 2 for p in predictions)
    assert all(p["predicted_ts_ms"] >= p["event_ts_ms"] > 0 for p in predictions)

    # Every malformed record is dead-lettered once, with its reason, source and original bytes.
    got: collections.Counter[tuple[bytes | None, str]] = collections.Counter()
    for record in dead:
        original = base64.b64decode(record["original_b64"]) if record["original_b64"] is not None else None
        got[(original, record["reason"])] += 1
        assert record["original_size"] >= len(original or b"")
        assert record["original_truncated"] == (record["original_size"] > len(original or b""))
        assert record["detail"]
        assert record["source"]["topic"] in (settings.kafka.events_topic, settings.kafka.labels_topic)
        assert record["source"]["offset"] >= 0
    assert got == malformed
    assert (
        sum(n for (_, reason), n in got.items() if reason == DeadLetterReason.LABEL_UNMATCHED) == spec.unmatched_labels
    )
    event_dead = sum(1 for r in dead if r["source"]["topic"] == settings.kafka.events_topic)
    assert len(predictions) + event_dead == n_event_messages  # N in -> N out

    # Inline and delayed labels were all learned from (joined to the logged features).
    # The candidate (a fork of the champion) learns; the champion that serves never does.
    expected_learned = sum(1 for i in workload.items() if i.labelled)
    reports = [e for e in out["model_events"] if e["type"] == "report"]
    skipped = [e.get("skipped_batches_total") for e in reports if e["model"] == "fork"][-1:]
    assert sum(e["n_learned"] for e in reports if e["model"] == "fork") == expected_learned, f"skipped: {skipped}"
    assert sum(e["n_learned"] for e in reports if e["model"] == "champion") == 0
    assert sum(e["n_labelled"] for e in reports if e["model"] == "champion") == expected_learned
    lineage_offsets = [o for e in reports if e["model"] == "fork" for o in e["offsets"].values()]
    assert lineage_offsets and all(lo <= hi for lo, hi in lineage_offsets)
    # It got there by promotions: each names the champion it replaced.
    decisions = [e for e in out["model_events"] if e["type"] == "decision" and e["action"] == "promote"]
    assert decisions[0]["version"] == "default/1" and decisions[0]["previous"] is None  # the first champion
    assert len(decisions) >= 3, decisions  # it is replaced, and again after the drift
    assert all(d["previous"] and d["reason"] for d in decisions[1:])

    # Prequential accuracy: high before the drift, drops just after, climbs back by the end.
    predicted = {p["id"]: p["prediction"] for p in predictions}
    drift = spec.drift_at
    # The last 1,000 events before the drift: in about 1 run in 8, a torch fork's first promotion
    # comes as late as event 6,500 (why is open), and the untrained champion's share of a longer
    # window is not what this test is about.
    before = _accuracy(workload, predicted, drift - 1000, drift)
    just_after = _accuracy(workload, predicted, drift, drift + PHASE)
    end = _accuracy(workload, predicted, spec.n_events - PHASE, spec.n_events)
    seen = f"accuracy before {before:.3f}, just after {just_after:.3f}, end {end:.3f}"
    assert before > 0.85, seen
    assert just_after < before - drop, seen
    assert end > just_after + drop, seen
    assert end > 0.75, seen
    final = [e for e in reports if e["model"] == "champion"][-1]
    assert final["accuracy"] is not None and 0.5 < final["accuracy"] < 1.0


def test_graceful_stop_flushes_everything_while_tailing(fresh_settings: SettingsFactory) -> None:
    settings = fresh_settings(runtime={"tail": True, "workers": 2})
    daemon = BackgroundDaemon(settings).start()
    spec = WorkloadSpec(n_events=3000, drift_at=1500, malformed_every=0, unmatched_labels=2)
    workload = Workload(spec)
    malformed = _produce(settings, workload)
    out = _outputs(settings, spec.n_events, 1)  # the bad label arrives while running
    assert len({p["id"] for p in out["predictions"]}) == spec.n_events

    assert daemon.stop(timeout_s=30), "the daemon did not stop within 30 s of the stop request"
    assert daemon.errors == []
    # On stop without a recovery store, labels still waiting for their event are dead-lettered.
    final = _outputs(settings, spec.n_events, sum(malformed.values()))
    reasons = collections.Counter(r["reason"] for r in final["dead"])
    assert reasons == {"label_unmatched": spec.unmatched_labels, "bad_json": 1}


def test_sink_raises_when_the_broker_does_not_take_a_message(kafka_bootstrap: str) -> None:
    # auto.create.topics.enable is false on the local broker: a missing topic is never acknowledged.
    sink = ReliableKafkaSink(kafka_bootstrap, {"message.timeout.ms": 1500}, flush_timeout_s=10)
    part = sink.build("out", 0, 1)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="refused 1 message"):
        part.write_batch([KafkaOut("headwater-no-such-topic", b"k", b"v")])
    assert time.monotonic() - started < 10


def test_sink_raises_when_the_client_refuses_a_message_before_sending(kafka_bootstrap: str) -> None:
    sink = ReliableKafkaSink(kafka_bootstrap, flush_timeout_s=10)
    part = sink.build("out", 0, 1)
    with pytest.raises(DeliveryError, match="Kafka refused a message"):
        part.write_batch([KafkaOut("headwater-no-such-topic", b"k", b"v" * 2_000_000)])
