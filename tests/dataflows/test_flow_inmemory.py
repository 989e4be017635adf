"""The whole flow in memory: `build_flow` handed Bytewax's TestingSource and TestingSink and real
collaborators (registry, board, promoter), run with `run_main`. Every event is predicted or
dead-lettered, each kind of output goes to its own topic with its own key, and the lifecycle
runs: a candidate is promoted, and every prediction names the registry version that made it."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from daemon.registry import SqliteRegistry
from daemon.wiring import local_deps
from daemon.workload import CLASSES, FEATURES, Workload, WorkloadSpec
from dataflows import FlowConfig, FlowDeps, GateSpec, KafkaOut, Topics, build_flow, install_champion
from dataflows.decode import FeatureSchema, RawMessage
from dataflows.records import SinkItem, sink_messages
from learners import LearnerSpec

TOPICS = Topics("events", "predictions", "dead-letters", "model-events", "labels")


def _messages(workload: Workload) -> list[RawMessage]:
    offsets: collections.Counter[str] = collections.Counter()
    out = []
    for item in workload.items():
        topic = TOPICS.events if item.kind == "events" else (TOPICS.labels or "")
        out.append(RawMessage(item.key, item.value, topic, 0, offsets[topic]))
        offsets[topic] += 1
    return out


def test_the_whole_flow_in_memory(tmp_path: Path) -> None:
    spec = WorkloadSpec(n_events=6000, drift_at=6000, malformed_every=250, label_delay=100, unmatched_labels=3)
    workload = Workload(spec)
    messages = _messages(workload)
    config = FlowConfig(
        "unused:9092", TOPICS, FeatureSchema(list(FEATURES), list(CLASSES)), LearnerSpec("river-logreg"),
        gate=GateSpec(threaded=False), batch_max_size=200,
    )  # fmt: skip
    items: list[SinkItem] = []
    run_main(_flow(config, local_deps(TestingSource(messages, batch_size=200), TestingSink(items), tmp_path)))

    by_topic: dict[str, list[KafkaOut]] = collections.defaultdict(list)
    for message in sink_messages(items):
        by_topic[message.topic].append(message)
    assert set(by_topic) == {TOPICS.predictions, TOPICS.dead_letters, TOPICS.model_events}

    predictions = [orjson.loads(m.value) for m in by_topic[TOPICS.predictions]]
    assert sorted(p["id"] for p in predictions) == sorted(workload.order)  # one per valid event
    assert all(m.key == orjson.loads(m.value)["id"].encode() for m in by_topic[TOPICS.predictions])
    dead = [orjson.loads(m.value) for m in by_topic[TOPICS.dead_letters]]
    expected_dead = collections.Counter(i.expect.value for i in workload.items() if i.expect is not None)
    assert collections.Counter(d["reason"] for d in dead) == expected_dead
    events = [orjson.loads(m.value) for m in by_topic[TOPICS.model_events]]
    assert {m.key for m in by_topic[TOPICS.model_events]} == {b"default"}
    assert {e["type"] for e in events} == {"report", "verdict", "decision"}

    promotions = [e for e in events if e["type"] == "decision" and e["action"] == "promote"]
    assert promotions[0]["version"] == "default/1" and promotions[0]["previous"] is None
    assert len(promotions) >= 2 and promotions[1]["previous"] == "default/1"
    with SqliteRegistry(tmp_path) as registry:
        known = {v.id for v in registry.versions("default")}
        served = {v.id for v in registry.versions("default") if v.checkpoint_sha256 is not None}
        assert [d.version for d in registry.decisions("default") if d.action == "promote"] == [
            p["version"] for p in promotions
        ]
    # Every prediction names a version the registry knows, with the checkpoint that made it.
    assert {p["version"] for p in predictions} <= served <= known
    assert {p["route"] for p in predictions} == {"champion"}
    # The candidate learned every labelled example (inline and joined), the champion none.
    reports = [e for e in events if e["type"] == "report"]
    learned = sum(1 for i in workload.items() if i.labelled)
    assert sum(r["n_learned"] for r in reports if r["model"] == "fork") == learned
    assert sum(r["n_learned"] for r in reports if r["model"] in ("champion", "standby")) == 0


def test_categorical_features_through_the_flow(tmp_path: Path) -> None:
    """A schema with a categorical feature: events give its value as a string, the models know it
    is categorical (the fork, a linear model, one-hot encodes it and learns a label that no
    threshold on its code separates, and once promoted serves it), and a value outside its list
    is a dead letter that names it."""
    colours = ["red", "green", "blue", "cyan"]
    schema = FeatureSchema(["x", "colour"], [0, 1], categories={"colour": colours})
    rng = np.random.default_rng(5)
    messages, truth = [], {}
    for i in range(4000):
        colour = colours[int(rng.integers(0, 4))]
        label = int(colour in ("red", "blue"))
        features = {"x": float(rng.normal()), "colour": colour if i != 1500 else "purple"}
        body = {"id": f"e{i}", "features": features, "label": label}
        messages.append(RawMessage(f"e{i}".encode(), orjson.dumps(body), TOPICS.events, 0, i))
        truth[f"e{i}"] = label
    config = FlowConfig(
        "unused:9092", TOPICS, schema, LearnerSpec("river-logreg", {"lr": 0.1}),
        gate=GateSpec(threaded=False), batch_max_size=100,
    )  # fmt: skip
    items: list[SinkItem] = []
    run_main(_flow(config, local_deps(TestingSource(messages, batch_size=100), TestingSink(items), tmp_path)))
    out = sink_messages(items)
    dead = [orjson.loads(m.value) for m in out if m.topic == TOPICS.dead_letters]
    assert [(d["reason"], "'purple' is not one of" in d["detail"]) for d in dead] == [("unknown_category", True)]
    predictions = {p["id"]: p for p in (orjson.loads(m.value) for m in out if m.topic == TOPICS.predictions)}
    assert len(predictions) == 3999
    late = [predictions[f"e{i}"] for i in range(3000, 4000)]
    assert {p["version"] for p in late} != {"default/1"}  # the fork was promoted and serves
    assert sum(p["prediction"] == truth[p["id"]] for p in late) / len(late) >= 0.95


def test_a_champion_trained_with_other_categories_is_refused_at_restart(tmp_path: Path) -> None:
    """A category's code is its position in its list: a restart whose lists differ from those the
    registry's champion learned would feed it codes that mean other values. It is refused, naming both."""
    from dataflows.flow import install_champion

    def config(colours: list[str]) -> FlowConfig:
        schema = FeatureSchema(["x", "colour"], [0, 1], categories={"colour": colours})
        return FlowConfig("unused:9092", TOPICS, schema, LearnerSpec("river-logreg"), gate=GateSpec(threaded=False))

    first = config(["red", "green"])
    install_champion(first, local_deps(TestingSource([]), TestingSink([]), tmp_path))
    install_champion(first, local_deps(TestingSource([]), TestingSink([]), tmp_path))  # the same lists: fine
    with pytest.raises(ValueError, match=r"trained with categories \{'colour': \['red', 'green'\]\}"):
        install_champion(config(["green", "red"]), local_deps(TestingSource([]), TestingSink([]), tmp_path))


def _flow(config: FlowConfig, deps: FlowDeps) -> Dataflow:
    """The flow as the daemon builds it: the champion installed first."""
    return build_flow(config, deps, installed=install_champion(config, deps))


def run_workload(config: FlowConfig, workload: Workload, directory: Path) -> list[KafkaOut]:
    """``workload`` through the flow as the daemon builds it (a registry in ``directory``), in
    batches of 200 messages: every message it produced, in order."""
    items: list[SinkItem] = []
    run_main(
        _flow(config, local_deps(TestingSource(_messages(workload), batch_size=200), TestingSink(items), directory))
    )
    return sink_messages(items)
