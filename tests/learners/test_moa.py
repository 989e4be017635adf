"""MOA's learners are optional and lazy: nothing starts a JVM until one is built, and a missing
extra or Java runtime is one sentence that names the fix, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BUILD = (
    "from learners import LearnerSpec, build_learner\n"
    "build_learner(LearnerSpec('moa-hat'), n_features=2, n_classes=2, feature_names=['a', 'b'])\n"
)


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_importing_learners_and_building_a_river_model_starts_no_jvm() -> None:
    done = _python(
        "import sys\n"
        "from learners import LearnerSpec, build_learner\n"
        "build_learner(LearnerSpec('river-logreg'), n_features=2, n_classes=2, feature_names=['a', 'b'])\n"
        "import jpype\n"
        "print(jpype.isJVMStarted(), 'capymoa' in sys.modules)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_building_a_moa_learner_starts_the_jvm() -> None:
    done = _python(BUILD + "import jpype\nprint(jpype.isJVMStarted())\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]


def test_a_missing_extra_is_one_sentence_naming_it() -> None:
    done = _python(
        "import sys\nsys.modules['capymoa'] = None  # as if the extra were not installed\n"
        "from learners import LearnerError\n"
        "try:\n" + "".join("    " + line + "\n" for line in BUILD.splitlines()) + "except LearnerError as exc:\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip() == "MOA learners need the moa extra, which is not installed: pip install 'headwater[moa]'"
    )


def test_a_missing_java_is_one_sentence_naming_the_fix_in_the_cli(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"schema": {"features": ["a", "b"], "classes": [0, 1]}, "model": {"learner": "moa-arf"}})
    )
    done = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "check-config", "--config", str(config)], capture_output=True,
        text=True, timeout=120, check=False, env={**os.environ, "JAVA_HOME": str(tmp_path / "no-java-here")},
    )  # fmt: skip
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "Traceback" not in out
    assert "MOA learners need a Java runtime" in out
    assert "JAVA_HOME" in out


@pytest.mark.parametrize("params", [{"drift_detection_method": "ADWIN"}, {"drift_detection_method": {"name": "DDM"}}])
def test_drift_detectors_are_named_in_the_config(params: dict[str, object]) -> None:
    from learners import LearnerSpec, build_learner

    learner = build_learner(LearnerSpec("moa-arf", {"ensemble_size": 2, **params}), n_features=2, n_classes=2,
                            feature_names=["a", "b"])  # fmt: skip
    cli = str(learner.model.getCLICreationString(learner.model.getClass()))  # type: ignore[attr-defined]
    assert ("ADWIN" if params["drift_detection_method"] == "ADWIN" else "DDM") in cli


def test_predictions_from_several_threads_at_once_are_those_of_one_thread() -> None:
    """Serving and the champion's lane predict with the same model at once. Some MOA learners
    write to buffers of their own while they predict (Streaming Random Patches builds each member's
    feature subspace in place), so a MoaLearner lets one call into its model at a time."""
    import threading

    import numpy as np

    from learners import LearnerSpec, build_learner

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 5))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    learner = build_learner(LearnerSpec("moa-srp", {"ensemble_size": 5}), n_features=5, n_classes=2,
                            feature_names=list("abcde"))  # fmt: skip
    learner.learn(x, y)
    expected = learner.predict_proba(x)
    got: list[np.ndarray] = []

    def predict() -> None:
        for _ in range(4):
            got.append(learner.predict_proba(x))

    threads = [threading.Thread(target=predict) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 12
    for p in got:
        np.testing.assert_array_equal(p, expected)


def test_a_copy_saves_what_it_learned_after_it_was_made(tmp_path: Path) -> None:
    """A copy keeps the object stream it was made from, to be saved without writing it again, only
    until it learns: after that, a save or a snapshot holds what it learned."""
    import pickle

    import numpy as np

    from learners import LearnerSpec, build_learner

    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 3))
    y = (x[:, 0] > 0).astype(np.int64)
    learner = build_learner(LearnerSpec("moa-arf", {"ensemble_size": 3}), n_features=3, n_classes=2,
                            feature_names=list("abc"))  # fmt: skip
    learner.learn(x[:1000], y[:1000])
    copy = learner.clone(include_state=True)
    probe = x[:200]
    before = copy.predict_proba(probe)
    copy.learn(x[1000:], 1 - y[1000:])  # the opposite concept: predictions move
    after = copy.predict_proba(probe)
    assert not np.allclose(after, before)
    loaded = type(copy).load(copy.save(tmp_path / "copy"))
    np.testing.assert_array_equal(loaded.predict_proba(probe), after)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(copy)).predict_proba(probe), after)
    # and the original, which learned nothing since, still saves what it knew
    np.testing.assert_array_equal(type(learner).load(learner.save(tmp_path / "original")).predict_proba(probe), before)
