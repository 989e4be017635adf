"""One contract, every learner: built-ins and a user factory named by import path — clone (with
and without state), save/load round trip with digest checks, pickling, determinism under a seed.
Its twin for evaluators is `test_evaluators.py`."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from learners import Learner, LearnerError, LearnerSpec, build_learner
from learners.base import Artifact, FloatArray, IntArray

FEATURES = ["a", "b", "c"]
SPECS = [
    pytest.param(LearnerSpec("river-logreg"), id="river-logreg"),
    pytest.param(LearnerSpec("river-hoeffding", {"grace_period": 50}), id="river-hoeffding"),
    pytest.param(LearnerSpec("torch-mlp", {"device": "cpu", "hidden": [16, 16], "lr": 1e-2}), id="torch-mlp"),
    pytest.param(LearnerSpec("tests.learners.factories:gaussian_nb"), id="user-factory"),
    pytest.param(LearnerSpec("moa-arf", {"ensemble_size": 3}), id="moa-arf"),
    pytest.param(LearnerSpec("moa-srp", {"ensemble_size": 3}), id="moa-srp"),
    pytest.param(LearnerSpec("moa-levbag", {"ensemble_size": 3}), id="moa-levbag"),
    pytest.param(LearnerSpec("moa-hat", {"grace_period": 50}), id="moa-hat"),
    pytest.param(LearnerSpec("moa-efdt", {"grace_period": 50}), id="moa-efdt"),
    pytest.param(LearnerSpec("tests.learners.factories:capymoa_hoeffding_tree"), id="user-capymoa"),
]


def _build(spec: LearnerSpec, seed: int | None = None) -> Learner:
    if seed is not None:
        spec = LearnerSpec(spec.name, spec.params, seed)
    return build_learner(spec, n_features=len(FEATURES), n_classes=2, feature_names=FEATURES)


def _blobs(rng: np.random.Generator, n: int) -> tuple[FloatArray, IntArray]:
    """Two well separated Gaussian blobs in 3-D, on different scales per feature."""
    y = rng.integers(0, 2, n).astype(np.int64)
    centre = np.where(y[:, None] == 1, 1.0, -1.0) * np.array([2.0, 20.0, 0.2])
    x = centre + rng.normal(0, 1, (n, 3)) * np.array([1.0, 10.0, 0.1])
    return x.astype(np.float64), y


def _train(learner: Learner, seed: int = 0, batches: int = 20, size: int = 50) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(batches):
        x, y = _blobs(rng, size)
        learner.learn(x, y)


def _probe() -> FloatArray:
    return _blobs(np.random.default_rng(1234), 64)[0]


def _assert_probabilities(p: FloatArray, n: int) -> None:
    assert p.shape == (n, 2)
    assert np.all(p >= 0.0)
    assert np.all(p <= 1.0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("spec", SPECS)
def test_is_a_learner_with_declared_shape(spec: LearnerSpec) -> None:
    learner = _build(spec)
    assert isinstance(learner, Learner)
    assert learner.n_features == 3
    assert learner.n_classes == 2


@pytest.mark.parametrize("spec", SPECS)
def test_predict_proba_shape_and_rows_sum_to_one(spec: LearnerSpec) -> None:
    learner = _build(spec)
    x = _probe()
    _assert_probabilities(learner.predict_proba(x), len(x))
    assert learner.predict_proba(x[:0]).shape == (0, 2)
    _train(learner)
    _assert_probabilities(learner.predict_proba(x), len(x))
    _assert_probabilities(learner.predict_proba(x[:1]), 1)
    assert learner.predict_proba(x[:0]).shape == (0, 2)


@pytest.mark.parametrize("spec", SPECS)
def test_predict_proba_does_not_change_the_model(spec: LearnerSpec) -> None:
    learner = _build(spec)
    _train(learner, batches=3)
    x = _probe()
    first = learner.predict_proba(x)
    for _ in range(3):
        learner.predict_proba(_blobs(np.random.default_rng(9), 100)[0])
    np.testing.assert_array_equal(learner.predict_proba(x), first)


@pytest.mark.parametrize("spec", SPECS)
def test_learn_returns_none_and_accepts_empty_batch(spec: LearnerSpec) -> None:
    learner = _build(spec)
    learn = cast(Callable[[FloatArray, IntArray], object], learner.learn)
    x, y = _blobs(np.random.default_rng(0), 10)
    assert learn(x, y) is None
    before = learner.predict_proba(_probe())
    assert learn(x[:0], y[:0]) is None
    np.testing.assert_array_equal(learner.predict_proba(_probe()), before)


@pytest.mark.parametrize("spec", SPECS)
def test_clone_is_untrained(spec: LearnerSpec) -> None:
    learner = _build(spec)
    untrained = learner.predict_proba(_probe())
    _train(learner)
    trained = learner.predict_proba(_probe())
    assert not np.allclose(trained, untrained)

    clone = learner.clone()
    assert type(clone) is type(learner)
    assert (clone.n_features, clone.n_classes) == (learner.n_features, learner.n_classes)
    np.testing.assert_allclose(clone.predict_proba(_probe()), untrained)
    # and it learns like a fresh learner would
    fresh = _build(spec)
    _train(clone, seed=5, batches=3)
    _train(fresh, seed=5, batches=3)
    np.testing.assert_allclose(clone.predict_proba(_probe()), fresh.predict_proba(_probe()))


@pytest.mark.parametrize("spec", SPECS)
def test_clone_with_state_predicts_identically_and_is_independent(spec: LearnerSpec) -> None:
    learner = _build(spec)
    _train(learner)
    copy = learner.clone(include_state=True)
    np.testing.assert_array_equal(copy.predict_proba(_probe()), learner.predict_proba(_probe()))

    before = learner.predict_proba(_probe())
    rng = np.random.default_rng(77)
    x, y = _blobs(rng, 200)
    copy.learn(x, 1 - y)  # teach the copy the opposite
    np.testing.assert_array_equal(learner.predict_proba(_probe()), before)
    assert not np.allclose(copy.predict_proba(_probe()), before)


@pytest.mark.parametrize("spec", SPECS)
def test_save_load_round_trip_predicts_identically(spec: LearnerSpec, tmp_path: Path) -> None:
    learner = _build(spec)
    _train(learner)
    artifact = learner.save(tmp_path / "model")
    assert artifact.path.is_file()
    assert artifact.path.is_relative_to(tmp_path / "model")
    assert len(artifact.sha256) == 64

    loaded = type(learner).load(artifact)
    assert type(loaded) is type(learner)
    assert (loaded.n_features, loaded.n_classes) == (3, 2)
    np.testing.assert_array_equal(loaded.predict_proba(_probe()), learner.predict_proba(_probe()))


@pytest.mark.parametrize("spec", SPECS)
def test_loaded_model_goes_on_learning_like_the_saved_one(spec: LearnerSpec, tmp_path: Path) -> None:
    """A restart must not reset what the learner knows, optimizer state included."""
    learner = _build(spec)
    _train(learner)
    loaded = type(learner).load(learner.save(tmp_path))
    x, y = _blobs(np.random.default_rng(99), 200)
    learner.learn(x, 1 - y)
    loaded.learn(x, 1 - y)
    np.testing.assert_array_equal(loaded.predict_proba(_probe()), learner.predict_proba(_probe()))


@pytest.mark.parametrize("spec", SPECS)
def test_pickled_in_a_snapshot_it_goes_on_like_the_original(spec: LearnerSpec) -> None:
    """Lanes live in Bytewax's recovery snapshots (pickled, read back only from Headwater's own
    store): a learner must survive the round trip, predict the same and learn on the same."""
    learner = _build(spec)
    _train(learner)
    restored = pickle.loads(pickle.dumps(learner))
    assert type(restored) is type(learner)
    np.testing.assert_array_equal(restored.predict_proba(_probe()), learner.predict_proba(_probe()))
    x, y = _blobs(np.random.default_rng(5), 200)
    learner.learn(x, y)
    restored.learn(x, y)
    np.testing.assert_array_equal(restored.predict_proba(_probe()), learner.predict_proba(_probe()))


@pytest.mark.parametrize("spec", SPECS)
def test_untrained_model_round_trips(spec: LearnerSpec, tmp_path: Path) -> None:
    learner = _build(spec)
    loaded = type(learner).load(learner.save(tmp_path))
    np.testing.assert_array_equal(loaded.predict_proba(_probe()), learner.predict_proba(_probe()))
    _train(learner, batches=2)
    _train(loaded, batches=2)
    np.testing.assert_array_equal(loaded.predict_proba(_probe()), learner.predict_proba(_probe()))


@pytest.mark.parametrize("spec", SPECS)
def test_load_refuses_a_tampered_file(spec: LearnerSpec, tmp_path: Path) -> None:
    learner = _build(spec)
    _train(learner, batches=2)
    artifact = learner.save(tmp_path)
    data = bytearray(artifact.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.path.write_bytes(bytes(data))
    with pytest.raises(LearnerError, match="digest"):
        type(learner).load(artifact)


@pytest.mark.parametrize("spec", SPECS)
def test_load_refuses_a_wrong_recorded_digest(spec: LearnerSpec, tmp_path: Path) -> None:
    learner = _build(spec)
    artifact = learner.save(tmp_path)
    with pytest.raises(LearnerError, match="digest"):
        type(learner).load(Artifact(artifact.path, "0" * 64))


@pytest.mark.parametrize("spec", SPECS)
def test_same_seed_same_model(spec: LearnerSpec) -> None:
    a, b = _build(spec, seed=7), _build(spec, seed=7)
    np.testing.assert_array_equal(a.predict_proba(_probe()), b.predict_proba(_probe()))
    _train(a, seed=3)
    _train(b, seed=3)
    np.testing.assert_array_equal(a.predict_proba(_probe()), b.predict_proba(_probe()))


def test_torch_seed_changes_the_initial_weights() -> None:
    spec = LearnerSpec("torch-mlp", {"device": "cpu", "hidden": [16]})
    a, b = _build(spec, seed=1), _build(spec, seed=2)
    assert not np.allclose(a.predict_proba(_probe()), b.predict_proba(_probe()))


@pytest.mark.parametrize("spec", SPECS)
def test_learns_a_separable_problem(spec: LearnerSpec) -> None:
    learner = _build(spec)
    _train(learner, seed=0, batches=40, size=50)
    x, y = _blobs(np.random.default_rng(999), 1000)
    accuracy = float((learner.predict_proba(x).argmax(axis=1) == y).mean())
    assert accuracy > 0.9


def _concept_stream(seed: int, n: int, switch: int) -> tuple[FloatArray, IntArray]:
    """A linear concept on features of different scales that turns abruptly at ``switch``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 3)) * np.array([1.0, 10.0, 0.1])
    y = np.where(np.arange(n) < switch, x @ _CONCEPT_A > 0, x @ _CONCEPT_B > 0).astype(np.int64)
    return x, y


_CONCEPT_A, _CONCEPT_B = np.array([1.0, 0.1, 5.0]), np.array([-1.0, 0.1, 5.0])


def _learning_curve(spec: LearnerSpec, batch: int, n: int = 3000, switch: int = 1500, every: int = 100) -> float:
    """Mean accuracy, on a probe of the concept of the moment, taken every ``every`` events of a
    stream learned ``batch`` events at a time: how well and how fast it learns, and relearns."""
    learner = _build(spec)
    x, y = _concept_stream(0, n, switch)
    probe = _concept_stream(7, 400, 0)[0]
    scores = []
    for start in range(0, n, every):
        for b in range(start, start + every, batch):
            learner.learn(x[b : b + batch], y[b : b + batch])
        truth = (probe @ (_CONCEPT_A if start + every <= switch else _CONCEPT_B) > 0).astype(np.int64)
        scores.append(float((learner.predict_proba(probe).argmax(axis=1) == truth).mean()))
    return float(np.mean(scores))


PARITY_TOLERANCE = 0.01  # one point of mean accuracy along the stream
# The MLP as shipped (its default size and learning rate), not the small one the other checks use
# for speed: how well slices of a batch match steps on single events depends on both. On this
# stream the small net at lr 0.01 came 0.6 point below with slices of 8 and 1.1 with slices of 4, at
# lr 0.005 5.1 and 1.6; the default net 0.6 with slices of 8 and 0.3 with slices of 4 (the default).
PARITY_SPECS = [
    pytest.param(LearnerSpec("torch-mlp", {"device": "cpu"}), id="torch-mlp") if p.id == "torch-mlp" else p
    for p in SPECS
]


@pytest.mark.parametrize("spec", PARITY_SPECS)
def test_learns_as_well_from_micro_batches_as_one_event_at_a_time(spec: LearnerSpec) -> None:
    """Behind Headwater a learner sees micro-batches; alone, users feed it events one by one. On
    the same stream (with an abrupt change half-way) the batched learner must learn as well,
    within `PARITY_TOLERANCE` (issue 13). River learners learn a batch event by event: equal."""
    batched, one_by_one = _learning_curve(spec, batch=100), _learning_curve(spec, batch=1)
    assert batched >= one_by_one - PARITY_TOLERANCE, f"batches of 100: {batched:.4f}, one by one: {one_by_one:.4f}"
    if spec.name.startswith(("river-", "moa-")):  # they learn a batch event by event
        assert batched == one_by_one


# -- the factory ---------------------------------------------------------------------------------


def test_user_factory_returning_a_river_classifier_is_wrapped() -> None:
    from learners import RiverLearner

    learner = _build(LearnerSpec("tests.learners.factories:gaussian_nb"))
    assert isinstance(learner, RiverLearner)
    assert learner.feature_names == FEATURES


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(LearnerSpec("tests.learners.factories:not_a_learner"), "not a Learner", id="non-learner"),
        pytest.param(LearnerSpec("tests.learners.factories:NOT_CALLABLE"), "not callable", id="not-callable"),
        pytest.param(LearnerSpec("tests.learners.factories:missing"), "cannot be imported", id="no-attr"),
        pytest.param(LearnerSpec("tests.learners.no_such_module:f"), "cannot be imported", id="no-module"),
        pytest.param(LearnerSpec("no-such-learner"), "unknown learner", id="unknown-name"),
        pytest.param(LearnerSpec("module_only:"), "unknown learner", id="empty-attr"),
        pytest.param(
            LearnerSpec("tests.learners.factories:strict_params", {"depth": 3}),
            "rejected",
            id="bad-user-params",
        ),
        pytest.param(LearnerSpec("river-logreg", {"no_such_param": 1}), "rejected", id="bad-builtin-params"),
        pytest.param(LearnerSpec("moa-arf", {"no_such_param": 1}), "rejected", id="bad-moa-params"),
        pytest.param(
            LearnerSpec("moa-arf", {"drift_detection_method": {"name": "NoSuch"}}),
            "drift detector",
            id="bad-moa-detector",
        ),
    ],
)
def test_factory_errors_are_learner_errors(spec: LearnerSpec, message: str) -> None:
    with pytest.raises(LearnerError, match=message):
        _build(spec)


def test_logreg_refuses_more_than_two_classes() -> None:
    with pytest.raises(LearnerError, match="binary"):
        build_learner(LearnerSpec("river-logreg"), n_features=2, n_classes=3, feature_names=["a", "b"])


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(LearnerSpec("river-hoeffding"), id="river-hoeffding"),
        pytest.param(LearnerSpec("torch-mlp", {"device": "cpu", "hidden": [8]}), id="torch-mlp"),
        pytest.param(LearnerSpec("tests.learners.factories:gaussian_nb"), id="user-factory"),
        pytest.param(LearnerSpec("moa-arf", {"ensemble_size": 3}), id="moa-arf"),
    ],
)
def test_multiclass_probabilities(spec: LearnerSpec) -> None:
    learner = build_learner(spec, n_features=2, n_classes=3, feature_names=["a", "b"])
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300).astype(np.int64)
    x = np.stack([y * 3.0, -y * 3.0], axis=1) + rng.normal(0, 0.5, (300, 2))
    learner.learn(x, y)
    p = learner.predict_proba(x[:10])
    assert p.shape == (10, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)


def test_torch_mlp_without_pytorch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default image leaves PyTorch out: asking for torch-mlp there says what to install."""
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails, as where it is not installed
    monkeypatch.delitem(sys.modules, "learners.torch_learner", raising=False)
    with pytest.raises(LearnerError, match=r"torch-mlp needs PyTorch.*headwater\[torch\]"):
        build_learner(LearnerSpec("torch-mlp"), n_features=2, n_classes=2, feature_names=["a", "b"])


def test_a_cuda_device_that_is_not_there_is_a_clear_error() -> None:
    """Where CUDA is absent ``cuda`` is refused with a reason; where it is present, ``cuda:99``."""
    import torch

    device = "cuda:99" if torch.cuda.is_available() else "cuda"
    with pytest.raises(LearnerError, match=r"torch-mlp: device 'cuda(:99)?' asked for, but"):
        build_learner(LearnerSpec("torch-mlp", {"device": device}), n_features=2, n_classes=2,
                      feature_names=["a", "b"])  # fmt: skip
    with pytest.raises(LearnerError, match="not a device PyTorch knows"):
        build_learner(LearnerSpec("torch-mlp", {"device": "gpu"}), n_features=2, n_classes=2, feature_names=["a", "b"])
