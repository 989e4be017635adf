"""The embedded registry on real SQLite files with real learners: numbering, checkpoints, lineage,
decisions, threads, and a database it must not touch."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import numpy as np
import pytest

from daemon.registry import RegistryError, SqliteRegistry, UnknownVersionError
from daemon.registry.checkpoints import CheckpointStore
from dataflows.ports import Decision, OffsetRange, Registry
from learners import Artifact, Learner, LearnerSpec, build_learner
from learners.base import FloatArray, IntArray, sha256_of, verified_bytes

FEATURES = ["a", "b", "c"]
RIVER = LearnerSpec("river-logreg")
TORCH = LearnerSpec("torch-mlp", {"device": "cpu", "hidden": [8]})
SPECS = [pytest.param(RIVER, id="river"), pytest.param(TORCH, id="torch")]


def _learner(spec: LearnerSpec = RIVER) -> Learner:
    return build_learner(spec, n_features=3, n_classes=2, feature_names=FEATURES)


def _trained(spec: LearnerSpec) -> Learner:
    learner = _learner(spec)
    rng = np.random.default_rng(0)
    for _ in range(10):
        y = rng.integers(0, 2, 40).astype(np.int64)
        x = np.where(y[:, None] == 1, 1.0, -1.0) * np.array([2.0, 20.0, 0.2]) + rng.normal(0, 1, (40, 3))
        learner.learn(x, y)
    return learner


def _probe() -> FloatArray:
    return np.random.default_rng(1234).normal(0, 5, (32, 3))


def _r(first: int, last: int, partition: int = 0, topic: str = "events") -> OffsetRange:
    return OffsetRange(topic, partition, first, last)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SqliteRegistry]:
    with SqliteRegistry(tmp_path / "registry") as reg:
        yield reg


def _create(
    reg: Registry,
    group: str = "default",
    *,
    name: str = "champion",
    parent: str | None = None,
    learner: Learner | None = None,
    status: str = "candidate",
    ts_ms: int = 1000,
) -> str:
    learner = learner or _learner()
    return reg.create_version(
        group, name=name, parent=parent, learner=learner, config={}, ts_ms=ts_ms, status=status
    ).id


class ConstantLearner:
    """A user's learner outside River and PyTorch: always predicts ``p`` for class 1."""

    def __init__(self, p: float = 0.5) -> None:
        self.n_features = 3
        self.n_classes = 2
        self.p = p

    def predict_proba(self, x: FloatArray) -> FloatArray:
        return np.tile([1 - self.p, self.p], (len(x), 1))

    def learn(self, x: FloatArray, y: IntArray) -> None:
        return None

    def clone(self, *, include_state: bool = False) -> Self:
        return type(self)(self.p if include_state else 0.5)

    def save(self, directory: Path) -> Artifact:
        path = directory / "constant.json"
        path.write_text(json.dumps({"p": self.p}))
        return Artifact(path, sha256_of(path))

    @classmethod
    def load(cls, artifact: Artifact) -> Self:
        return cls(json.loads(verified_bytes(artifact))["p"])


# -- versions -------------------------------------------------------------------------------------


def test_is_a_registry_and_numbers_versions_per_group(tmp_path: Path) -> None:
    reg: Registry = SqliteRegistry(tmp_path / "new" / "registry")
    assert isinstance(reg, Registry)
    assert (tmp_path / "new" / "registry" / "registry.sqlite3").is_file()
    ids = [_create(reg, group) for group in ["a", "a", "b", "a", "b"]]
    assert ids == ["a/1", "a/2", "b/1", "a/3", "b/2"]
    assert [(v.id, v.group, v.number) for v in reg.versions("a")] == [("a/1", "a", 1), ("a/2", "a", 2), ("a/3", "a", 3)]
    assert reg.versions("nobody") == []


def test_a_version_records_what_it_was_made_from(registry: SqliteRegistry) -> None:
    champion = _create(registry, status="champion", ts_ms=5)
    info = registry.create_version(
        "default", name="fast", parent=champion, learner=_learner(TORCH), ts_ms=7,
        config={"lr": np.float32(0.25), "hidden": (8,), "nan": float("nan"), "steps": np.int64(4)},
    )  # fmt: skip
    assert registry.version(info.id) == info
    assert (info.id, info.name, info.parent, info.status, info.created_ms) == (
        "default/2",
        "fast",
        champion,
        "candidate",
        7,
    )
    assert (info.framework, info.learner_class) == ("torch", "learners.torch_learner:TorchMLP")
    assert dict(info.config) == {"lr": 0.25, "hidden": [8], "nan": None, "steps": 4}
    assert (info.promoted_ms, info.retired_ms, info.samples, info.checkpoint_sha256, info.ranges) == (
        None,
        None,
        0,
        None,
        (),
    )
    first = registry.version(champion)
    assert (first.framework, first.learner_class) == ("river", "learners.river_learner:RiverLearner")
    assert (first.status, first.promoted_ms) == ("champion", 5)
    user = registry.create_version("default", name="c", parent=None, learner=ConstantLearner(), config={}, ts_ms=0)
    assert (user.framework, user.learner_class) == ("tests", "tests.daemon.test_registry:ConstantLearner")


def test_unknown_versions_are_named(registry: SqliteRegistry) -> None:
    with pytest.raises(UnknownVersionError, match=r"'default/9'") as caught:
        registry.version("default/9")
    assert isinstance(caught.value, LookupError)
    assert caught.value.version_id == "default/9"
    with pytest.raises(UnknownVersionError, match="default/9"):
        registry.record_learning("default/9", [_r(0, 1)], 2)
    with pytest.raises(UnknownVersionError, match="default/9"):
        _create(registry, parent="default/9")
    assert registry.versions("default") == []


def test_lineage_walks_the_parents_newest_first(registry: SqliteRegistry) -> None:
    v1 = _create(registry, status="champion")
    v2 = _create(registry, parent=v1, name="c")
    v3 = _create(registry, parent=v2, name="c")
    _create(registry, parent=v1, name="other")
    assert [v.id for v in registry.lineage(v3)] == [v3, v2, v1]
    assert [v.id for v in registry.lineage(v1)] == [v1]


# -- checkpoints ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS)
def test_a_checkpoint_loads_back_predicting_identically(registry: SqliteRegistry, spec: LearnerSpec) -> None:
    learner = _trained(spec)
    version = _create(registry, learner=learner)
    sha = registry.save_checkpoint(version, learner)
    assert registry.version(version).checkpoint_sha256 == sha
    [stored] = (registry.directory / "checkpoints" / sha).iterdir()
    assert sha256_of(stored) == sha
    loaded = registry.load_checkpoint(version)
    assert type(loaded) is type(learner) and loaded is not learner
    np.testing.assert_array_equal(loaded.predict_proba(_probe()), learner.predict_proba(_probe()))
    assert registry.save_checkpoint(version, learner) == sha  # same bytes: same place, kept
    assert [p.name for p in (registry.directory / "checkpoints").iterdir()] == [sha]


def test_a_users_learner_class_is_loaded_by_import_path(registry: SqliteRegistry) -> None:
    version = _create(registry, learner=ConstantLearner(0.9))
    registry.save_checkpoint(version, ConstantLearner(0.9))
    loaded = registry.load_checkpoint(version)
    assert isinstance(loaded, ConstantLearner) and loaded.p == 0.9


@pytest.mark.parametrize("spec", SPECS)
def test_a_tampered_checkpoint_is_refused(registry: SqliteRegistry, spec: LearnerSpec) -> None:
    learner = _trained(spec)
    version = _create(registry, learner=learner)
    sha = registry.save_checkpoint(version, learner)
    [stored] = (registry.directory / "checkpoints" / sha).iterdir()
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match=rf"{version}: .*digest .* does not match the recorded {sha}"):
        registry.load_checkpoint(version)
    assert registry.save_checkpoint(version, learner) == sha  # saving again replaces the damaged file
    np.testing.assert_array_equal(
        registry.load_checkpoint(version).predict_proba(_probe()), learner.predict_proba(_probe())
    )


def test_a_checkpoint_path_outside_the_store_is_refused(tmp_path: Path) -> None:
    learner = _trained(RIVER)
    outside = learner.save(tmp_path / "outside")  # a good checkpoint, in the wrong place
    store = CheckpointStore(tmp_path / "registry" / "checkpoints")
    cls = "learners.river_learner:RiverLearner"
    for relpath in ["../../outside/river-model.pkl", str(outside.path), f"{outside.sha256}/../../../outside/x"]:
        with pytest.raises(RegistryError, match="leaves the checkpoints folder"):
            store.load(cls, relpath, outside.sha256)
    (tmp_path / "registry" / "checkpoints" / "in").mkdir()
    inside = learner.save(tmp_path / "registry" / "checkpoints" / "in")
    assert isinstance(store.load(cls, "in/river-model.pkl", inside.sha256), type(learner))


def test_a_recorded_path_with_dotdot_is_refused_by_load_checkpoint(registry: SqliteRegistry) -> None:
    learner = _trained(RIVER)
    version = _create(registry, learner=learner)
    sha = registry.save_checkpoint(version, learner)
    outside = learner.save(registry.directory / "elsewhere")
    with sqlite3.connect(registry.db_path) as db:
        db.execute("UPDATE versions SET checkpoint_path = ? WHERE id = ?", ("../elsewhere/river-model.pkl", version))
    assert outside.sha256 == sha
    with pytest.raises(RegistryError, match=rf"{version}: checkpoint path '../elsewhere/river-model.pkl' leaves"):
        registry.load_checkpoint(version)


@pytest.mark.parametrize(
    ("learner_class", "why"),
    [
        ("os:system", "not a learner class"),
        ("subprocess:Popen", "not a learner class"),
        ("no_such_module:Learner", "cannot be imported"),
        ("learners.torch_learner:Nope", "cannot be imported"),
        ("learners.torch_learner.TorchMLP", "is not 'package.module:QualName'"),
    ],
)
def test_load_imports_only_learner_classes(tmp_path: Path, learner_class: str, why: str) -> None:
    store = CheckpointStore(tmp_path)
    sha, relpath = store.save(_learner())
    with pytest.raises(RegistryError, match=why):
        store.load(learner_class, relpath, sha)


def test_checkpoint_of_another_class_or_none_is_refused(registry: SqliteRegistry) -> None:
    version = _create(registry)
    with pytest.raises(RegistryError, match="has no checkpoint yet"):
        registry.load_checkpoint(version)
    with pytest.raises(RegistryError, match=r"created for learners\.river_learner:RiverLearner, not .*TorchMLP"):
        registry.save_checkpoint(version, _learner(TORCH))


# -- learning -------------------------------------------------------------------------------------


def test_learning_accumulates_and_survives_a_reopen(tmp_path: Path) -> None:
    with SqliteRegistry(tmp_path) as reg:
        v = _create(reg)
        other = _create(reg)
        reg.record_learning(v, [_r(0, 9), _r(0, 4, partition=1)], 15)
        reg.record_learning(v, [_r(10, 19)], 10)  # adjacent: joins
        reg.record_learning(v, [_r(30, 39)], 10)  # gap 20..29 stays
        reg.record_learning(other, [_r(100, 199)], 100)
        reg.record_learning(v, [], 0)
        assert reg.version(v).ranges == (_r(0, 19), _r(30, 39), _r(0, 4, partition=1))
        assert reg.version(v).samples == 35
    with SqliteRegistry(tmp_path) as reg:
        assert reg.version(v).ranges == (_r(0, 19), _r(30, 39), _r(0, 4, partition=1))
        reg.record_learning(v, [_r(20, 29), _r(5, 9, partition=1)], 15)  # fills the gap, after the reopen
        assert reg.version(v).ranges == (_r(0, 39), _r(0, 9, partition=1))
        assert reg.version(v).samples == 50
        assert (reg.version(other).ranges, reg.version(other).samples) == ((_r(100, 199),), 100)
    with SqliteRegistry(tmp_path) as reg:
        assert [(x.ranges, x.samples) for x in reg.versions("default")] == [
            ((_r(0, 39), _r(0, 9, partition=1)), 50), ((_r(100, 199),), 100)
        ]  # fmt: skip


def test_learning_refuses_bad_input_without_writing(registry: SqliteRegistry) -> None:
    v = _create(registry)
    registry.record_learning(v, [_r(0, 9)], 10)
    with pytest.raises(RegistryError, match="first must be >= 0 and <= last"):
        registry.record_learning(v, [_r(20, 29), _r(5, 3)], 10)
    with pytest.raises(RegistryError, match="-1 samples"):
        registry.record_learning(v, [_r(20, 29)], -1)
    assert (registry.version(v).ranges, registry.version(v).samples) == ((_r(0, 9),), 10)


def test_learning_from_four_threads_adds_up(registry: SqliteRegistry) -> None:
    versions = [_create(registry) for _ in range(4)]
    calls, batch = 300, 7
    start = threading.Barrier(len(versions) + 1)
    errors: list[BaseException] = []

    def learn(version: str, partition: int) -> None:
        start.wait()
        try:
            for i in range(calls):
                registry.record_learning(version, [_r(i * batch, i * batch + batch - 1, partition)], batch)
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        start.wait()
        for _ in range(calls):
            registry.versions("default")

    threads = [threading.Thread(target=learn, args=(v, p)) for p, v in enumerate(versions)]
    threads.append(threading.Thread(target=read))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread is still running after 60 s"
    assert errors == []
    for partition, version in enumerate(versions):
        info = registry.version(version)
        assert (info.samples, info.ranges) == (calls * batch, (_r(0, calls * batch - 1, partition),))


# -- decisions and verdicts -----------------------------------------------------------------------


def _decide(reg: SqliteRegistry, action: str, version: str, ts_ms: int, previous: str | None = None) -> None:
    reg.record_decision(Decision("default", action, version, f"{action} {version}", ts_ms, previous))


def _status(reg: SqliteRegistry) -> dict[str, tuple[str, int | None, int | None]]:
    return {v.id: (v.status, v.promoted_ms, v.retired_ms) for v in reg.versions("default")}


def test_decisions_move_the_champion(registry: SqliteRegistry) -> None:
    v1 = _create(registry, status="champion", ts_ms=1000)
    v2 = _create(registry, parent=v1, name="c")
    assert registry.champion("default") == registry.version(v1)
    _decide(registry, "promote", v2, 2000, previous=v1)
    assert _status(registry) == {v1: ("standby", 1000, None), v2: ("champion", 2000, None)}
    assert registry.champion("default") == registry.version(v2)
    _decide(registry, "rollback", v1, 3000, previous=v2)
    assert _status(registry) == {v1: ("champion", 3000, None), v2: ("retired", 2000, 3000)}
    assert registry.champion("default") == registry.version(v1)
    v3 = _create(registry, parent=v1, name="c")
    _decide(registry, "refuse", v3, 4000)
    assert _status(registry)[v3] == ("retired", None, 4000)
    with pytest.raises(RegistryError, match=rf"cannot retire {v1}: it is the champion"):
        _decide(registry, "retire", v1, 5000)  # the group would be left without one
    assert registry.champion("default") == registry.version(v1)
    v4 = _create(registry, parent=v1, name="c")
    _decide(registry, "promote", v4, 6000, previous=v1)
    _decide(registry, "retire", v1, 7000)  # once replaced, it may be retired
    assert _status(registry)[v1] == ("retired", 3000, 7000)
    assert [(d.action, d.version, d.previous, d.ts_ms) for d in registry.decisions("default")] == [
        ("promote", v2, v1, 2000), ("rollback", v1, v2, 3000), ("refuse", v3, None, 4000),
        ("promote", v4, v1, 6000), ("retire", v1, None, 7000),
    ]  # fmt: skip


def test_a_groups_first_champion_is_promoted_with_no_previous(registry: SqliteRegistry) -> None:
    v1 = _create(registry)
    v2 = _create(registry, name="c")
    with pytest.raises(RegistryError, match=rf"{v2} cannot replace {v1} as champion of 'default': {v1} is not the"):
        _decide(registry, "promote", v2, 1400, previous=v1)
    _decide(registry, "promote", v1, 1500)
    assert _status(registry) == {v1: ("champion", 1500, None), v2: ("candidate", None, None)}
    assert registry.champion("default") == registry.version(v1)


def test_a_group_never_has_two_champions(registry: SqliteRegistry) -> None:
    v1 = _create(registry, status="champion")
    v2 = _create(registry, name="c")
    other_group = _create(registry, "other", status="champion")
    assert registry.champion("other") == registry.version(other_group)
    with pytest.raises(RegistryError, match=r"default/3 cannot become champion of 'default' while default/1 is"):
        _create(registry, status="champion")
    with pytest.raises(RegistryError, match=rf"{v2} cannot become champion of 'default' while {v1} is champion"):
        _decide(registry, "promote", v2, 2000)
    v3 = _create(registry, name="c")
    with pytest.raises(RegistryError, match=rf"{v3} cannot become champion of 'default' while {v1} is champion"):
        _decide(registry, "promote", v3, 2000, previous=v2)
    with pytest.raises(RegistryError, match="already the champion"):
        _decide(registry, "promote", v1, 2000)
    for action in ("retire", "refuse"):  # nor none: a champion is only ever replaced
        with pytest.raises(RegistryError, match=rf"cannot {action} {v1}: it is the champion of 'default'"):
            _decide(registry, action, v1, 2000)
    assert _status(registry) == {v1: ("champion", 1000, None), v2: ("candidate", None, None),
                                 v3: ("candidate", None, None)}  # fmt: skip
    assert registry.decisions("default") == []
    with sqlite3.connect(registry.db_path) as db, pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        db.execute("UPDATE versions SET status = 'champion' WHERE id = ?", (v2,))  # the file refuses it too


def test_decisions_must_name_real_versions_of_their_group(registry: SqliteRegistry) -> None:
    v1 = _create(registry, status="champion")
    elsewhere = _create(registry, "other")
    with pytest.raises(RegistryError, match="names other/1 of another group"):
        _decide(registry, "promote", elsewhere, 2000, previous=v1)
    with pytest.raises(UnknownVersionError, match="default/7"):
        _decide(registry, "refuse", "default/7", 2000)
    with pytest.raises(RegistryError, match="unknown decision 'demote'"):
        _decide(registry, "demote", v1, 2000)
    assert registry.decisions("default") == []


def test_decisions_and_verdicts_keep_their_evidence(registry: SqliteRegistry) -> None:
    v1 = _create(registry, status="champion")
    v2 = _create(registry, name="c")
    evidence = {"auc": np.float64(0.81), "n": np.int64(500), "delta": float("nan"), "windows": (1, 2)}
    registry.record_verdict(v2, "shadow", "running", "not enough data yet", {"n": 10}, 1500)
    registry.record_verdict(v2, "shadow", "passed", "better by 0.03", evidence, 2000)
    registry.record_verdict(v2, "canary", "pending", "no traffic yet", {"errors": 0.04}, 2000)
    registry.record_verdict(v1, "golden", "failed", "worse", {}, 2100)
    registry.record_decision(Decision("default", "promote", v2, "shadow passed", 2500, v1, evidence))
    plain = {"auc": 0.81, "n": 500, "delta": None, "windows": [1, 2]}
    assert registry.verdicts(v2) == [
        {"version": v2, "evaluator": "shadow", "phase": "running", "reason": "not enough data yet",
         "evidence": {"n": 10}, "ts_ms": 1500},
        {"version": v2, "evaluator": "shadow", "phase": "passed", "reason": "better by 0.03", "evidence": plain,
         "ts_ms": 2000},
        {"version": v2, "evaluator": "canary", "phase": "pending", "reason": "no traffic yet",
         "evidence": {"errors": 0.04}, "ts_ms": 2000},
    ]  # fmt: skip
    assert [v["evaluator"] for v in registry.verdicts(v1)] == ["golden"]
    assert registry.decisions("default") == [Decision("default", "promote", v2, "shadow passed", 2500, v1, plain)]
    assert registry.decisions("other") == []
    with pytest.raises(UnknownVersionError):
        registry.record_verdict("default/9", "shadow", "passed", "", {}, 0)


# -- the file -------------------------------------------------------------------------------------


def test_a_database_from_a_newer_headwater_is_refused(tmp_path: Path) -> None:
    with SqliteRegistry(tmp_path) as reg:
        _create(reg)
    with sqlite3.connect(tmp_path / "registry.sqlite3") as db:
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    with pytest.raises(RegistryError, match=r"schema version 3, newer than the 2 .* upgrade Headwater"):
        SqliteRegistry(tmp_path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "registry.sqlite3").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(RegistryError, match=r"registry\.sqlite3 cannot be opened as a registry database"):
        SqliteRegistry(tmp_path)


def test_the_database_may_live_elsewhere_and_is_closed_by_close(tmp_path: Path) -> None:
    reg = SqliteRegistry(tmp_path / "dir", db_path=tmp_path / "db.sqlite3")
    _create(reg)
    assert (tmp_path / "db.sqlite3").is_file() and not (tmp_path / "dir" / "registry.sqlite3").exists()
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    reg.close()
    reg.close()
    with pytest.raises(RegistryError, match="is closed"):
        reg.version("default/1")


def test_decisions_are_counted_and_read_per_group_from_any_point(registry: SqliteRegistry) -> None:
    """What a resume needs (`dataflows.train.reconcile._replay_decisions`): how many decisions a
    group has, and those after the first n, in order, other groups' left out."""
    made: list[tuple[str, str]] = []
    for group in ("default", "other", "default", "default", "other"):
        version = _create(registry, group)
        registry.record_decision(Decision(group, "retire", version, f"retire {version}", 1000 + len(made)))
        made.append((group, version))
    assert registry.decision_count("default") == 3
    assert registry.decision_count("other") == 2
    assert registry.decision_count("nobody") == 0
    default = [v for g, v in made if g == "default"]
    assert [d.version for d in registry.decisions("default")] == default
    assert [d.version for d in registry.decisions("default", skip=1)] == default[1:]
    assert registry.decisions("default", skip=3) == []
    assert registry.decisions("default", skip=10) == []
