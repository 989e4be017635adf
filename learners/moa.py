"""MOA's stream learners, through CapyMOA, behind the `Learner` interface.

MOA (Java) holds the strongest online learners of the field: Adaptive Random Forest, Streaming
Random Patches, Leveraging Bagging, the Hoeffding Adaptive Tree, EFDT. CapyMOA builds them with
their options and starts the JVM in this process; a `MoaLearner` then talks to the MOA object
directly through a small Java bridge (`MoaBridge.java`, compiled with the JDK's compiler when the
JVM starts): one call predicts, or learns, a whole micro-batch, event by event and in order, so the
model makes the updates MOA makes alone without a Python->Java crossing per event.

Optional and lazy: CapyMOA is the ``moa`` extra, and importing this module starts nothing. The JVM
starts when the first MOA learner is built (or unpickled); a missing extra or Java runtime is one
`LearnerError` sentence naming the fix.

State is Java serialisation, through the bridge rather than CapyMOA's ``save_model`` (a pickle
around plain Java serialisation), because MOA's Streaming Random Patches members are not
Serializable: the bridge carries such an object as its fields. Java deserialisation can run code,
so `MoaLearner.load` reads only files whose SHA-256 matches the digest Headwater's registry
recorded when it wrote them, and the stream may name only classes of MOA and Java (`CLASS_FILTER`).
"""

from __future__ import annotations

import importlib
import json
import shutil
import struct
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from learners.base import (
    Artifact,
    Categories,
    FloatArray,
    IntArray,
    LearnerError,
    normalized,
    sha256_of,
    verified_bytes,
)

__all__ = [
    "MOA_EXTRA",
    "MoaLearner",
    "adaptive_random_forest",
    "efdt",
    "hoeffding_adaptive_tree",
    "is_capymoa_classifier",
    "leveraging_bagging",
    "moa_module",
    "streaming_random_patches",
]

MOA_EXTRA = "pip install 'headwater[moa]'"
# What a saved MOA model may contain: MOA's classes, the instance classes it shares with SAMOA, its
# option parser, the JDK's own, and the bridge's; anything else is refused before it is built.
CLASS_FILTER = "java.**;moa.**;com.yahoo.labs.samoa.**;com.github.javacliparser.**;headwater.**;!*"
_TARGET = "class"
_MAGIC = b"HWMOA1\n"
_BRIDGE_SOURCE = Path(__file__).with_name("MoaBridge.java")


def moa_module(name: str = "capymoa") -> Any:
    """Import a CapyMOA module, starting the JVM the first time. A missing extra or Java runtime
    raises a `LearnerError` of one sentence that names the fix."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("capymoa", "jpype"):
            raise
        msg = f"MOA learners need the moa extra, which is not installed: {MOA_EXTRA}"
        raise LearnerError(msg) from None
    except (RuntimeError, OSError, ValueError) as exc:  # CapymoaImportError, JVMNotFoundException
        msg = (f"MOA learners need a Java runtime (11 or later) and CapyMOA could not start one ({exc}): "
               "install a JDK (Debian: apt-get install openjdk-17-jdk-headless) or point JAVA_HOME at one")  # fmt: skip
        raise LearnerError(msg) from None


def is_capymoa_classifier(obj: object) -> bool:
    """Whether ``obj`` is a CapyMOA classifier wrapping a MOA learner (without importing CapyMOA)."""
    return type(obj).__module__.startswith("capymoa.") and hasattr(obj, "moa_learner")


class MoaLearner:
    """A MOA classifier; labels are class indices ``0..n_classes-1``, MOA's nominal class values.

    ``model`` is the Java object (``moa.classifiers.Classifier``) configured and ready to learn,
    e.g. a CapyMOA classifier's ``moa_learner``. Build one with the factories below.
    """

    def __init__(
        self,
        model: Any,
        n_features: int,
        n_classes: int,
        feature_names: Sequence[str] | None = None,
        categories: Categories | None = None,
    ) -> None:
        self.n_features = n_features
        self.n_classes = n_classes
        self.feature_names = list(feature_names or [f"x{i}" for i in range(n_features)])
        if len(self.feature_names) != n_features:
            msg = f"{len(self.feature_names)} feature names for {n_features} features"
            raise LearnerError(msg)
        # Categorical features are MOA nominal attributes: a row carries the value's index, which is
        # how MOA stores a nominal value.
        self.categories = {name: list(values) for name, values in (categories or {}).items()}
        self._jvm = _Jvm.get()
        self._header = self._jvm.header(self.feature_names, n_classes, self.categories)
        self._model: Any = model
        self._model.setModelContext(self._header)
        # One call into the model at a time: serving and the champion's lane predict with the same
        # model at once, and some MOA learners write to buffers of their own while they predict
        # (Streaming Random Patches builds each member's feature subspace in place). Java calls
        # release the GIL, so without this lock they would run at the same time.
        self._calls = threading.Lock()
        # The model's Java object stream, kept while it learns nothing more: a frozen copy (a new
        # champion) is saved, and snapshotted every epoch, without writing it again (76 ms of the
        # 0.2 s a promotion of a 10-tree forest took on the serving thread).
        self._stream: bytes | None = None

    @property
    def model(self) -> Any:
        """The MOA object, for inspection (``str(learner.model.getPurposeString())``)."""
        return self._model

    def predict_proba(self, x: FloatArray) -> FloatArray:
        rows, k = len(x), self.n_classes
        out = np.zeros((rows, k))
        if rows:
            jvm = self._jvm
            features = jvm.doubles(_flat(x))
            with self._calls:
                flat = jvm.bridge.votes(self._model, self._header, features, rows, self.n_features, k)
            out = np.array(flat, dtype=float).reshape(rows, k)  # a copy: the view of a Java array is read-only
        out[~np.isfinite(out).all(axis=1)] = 0.0
        out[out < 0] = 0.0
        return normalized(out)

    def learn(self, x: FloatArray, y: IntArray) -> None:
        """One event at a time, in order, as MOA learns alone (in one call to the bridge)."""
        if len(y):
            jvm = self._jvm
            labels, features = jvm.ints(np.ascontiguousarray(y, dtype=np.int32)), jvm.doubles(_flat(x))
            with self._calls:
                self._stream = None
                jvm.bridge.train(self._model, self._header, features, self.n_features, labels)

    def clone(self, *, include_state: bool = False) -> Self:
        """An independent deep copy of the MOA object; without state, a new one with its options."""
        bridge = self._jvm.bridge
        if not include_state:
            with self._calls:
                model = bridge.fresh(self._model, self._header)
            return type(self)(model, self.n_features, self.n_classes, self.feature_names, self.categories)
        stream = self._object_stream()
        copy = type(self)(
            bridge.deserialize(self._jvm.bytes_(stream), CLASS_FILTER), self.n_features, self.n_classes,
            self.feature_names, self.categories,
        )  # fmt: skip
        copy._stream = stream
        return copy

    def save(self, directory: Path) -> Artifact:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "moa-model.jpkl"
        path.write_bytes(self._dumps())
        return Artifact(path=path, sha256=sha256_of(path))

    @classmethod
    def load(cls, artifact: Artifact) -> Self:
        # Java deserialisation executes code: read only Headwater's own file, after its digest matched.
        return cls._loads(verified_bytes(artifact))

    # A snapshot (Bytewax recovery, a process lane's pipe) pickles the learner: the MOA object
    # travels as the bridge's object stream, and a new JVM, if any, starts where it is read.
    def __getstate__(self) -> dict[str, Any]:
        return {"moa": self._dumps()}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        loaded = self._loads(state["moa"])
        self.__dict__.update(loaded.__dict__)

    def _dumps(self) -> bytes:
        meta = json.dumps({"n_features": self.n_features, "n_classes": self.n_classes,
                           "feature_names": self.feature_names, "categories": self.categories}).encode()  # fmt: skip
        return _MAGIC + struct.pack(">I", len(meta)) + meta + self._object_stream()

    def _object_stream(self) -> bytes:
        with self._calls:
            if self._stream is None:
                self._stream = bytes(self._jvm.bridge.serialize(self._model))
            return self._stream

    @classmethod
    def _loads(cls, data: bytes) -> Self:
        if not data.startswith(_MAGIC):
            msg = "not a Headwater MOA model (its first bytes differ)"
            raise LearnerError(msg)
        at = len(_MAGIC)
        (size,) = struct.unpack(">I", data[at : at + 4])
        meta = json.loads(data[at + 4 : at + 4 + size])
        jvm = _Jvm.get()
        try:
            stream = data[at + 4 + size :]
            model = jvm.bridge.deserialize(jvm.bytes_(stream), CLASS_FILTER)
        except Exception as exc:  # a JException: the filter refused a class, or the bytes are not a model
            msg = f"cannot read the MOA model: {exc}"
            raise LearnerError(msg) from exc
        learner = cls(model, meta["n_features"], meta["n_classes"], meta["feature_names"], meta.get("categories"))
        learner._stream = stream
        return learner


def _flat(x: FloatArray) -> FloatArray:
    return np.ascontiguousarray(x, dtype=np.float64).ravel()


class _Jvm:
    """The Java classes a `MoaLearner` needs, looked up once (and the JVM started) on first use."""

    _instance: _Jvm | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        jpype = moa_module("jpype")
        starts_here = not jpype.isJVMStarted()
        moa_module("capymoa")  # starts the JVM
        if starts_here and threading.current_thread() is not threading.main_thread():
            # The thread that creates the JVM is attached to it as a user thread, and the JVM's
            # shutdown at Python's exit waits for every user thread to detach: this one never would
            # once it ends (a daemon run in a thread hung its process's exit for minutes). It goes
            # on as a daemon thread, as JPype attaches every other thread.
            java_thread = jpype.JClass("java.lang.Thread")
            java_thread.detach()
            java_thread.attachAsDaemon()
        self.schema = moa_module("capymoa.stream").Schema
        self.doubles = jpype.JArray(jpype.JDouble)
        self.ints = jpype.JArray(jpype.JInt)
        self.bytes_ = jpype.JArray(jpype.JByte)
        self.bridge = _compile_bridge(jpype)
        self._headers: dict[tuple[Any, ...], Any] = {}

    @classmethod
    def get(cls) -> _Jvm:
        with cls._lock:  # lanes on several threads may build their first MOA model at once
            if cls._instance is None:
                cls._instance = cls()
        return cls._instance

    def header(self, feature_names: Sequence[str], n_classes: int, categories: Categories | None = None) -> Any:
        cats = categories or {}
        key = (tuple(feature_names), n_classes, tuple((k, tuple(map(str, v))) for k, v in sorted(cats.items())))
        if key not in self._headers:
            self._headers[key] = self.capymoa_schema(feature_names, n_classes, cats).get_moa_header()
        return self._headers[key]

    def capymoa_schema(self, feature_names: Sequence[str], n_classes: int, categories: Categories | None = None) -> Any:
        """The features, numeric or (``categories``) nominal with their values in order, then the class:
        a nominal attribute whose values are the class indices."""
        target = _TARGET
        while target in feature_names:
            target += "_"
        nominal = {name: [str(v) for v in values] for name, values in (categories or {}).items()}
        return self.schema.from_custom(
            [*feature_names, target], target=target,
            categories={**nominal, target: [str(i) for i in range(n_classes)]}, name="headwater",
        )  # fmt: skip


def _compile_bridge(jpype: Any) -> Any:
    """Compile `MoaBridge.java` with the JDK's compiler, inside the JVM, and load it: about a
    second, once per process. A JRE without the compiler gets one sentence."""
    compiler = jpype.JClass("javax.tools.ToolProvider").getSystemJavaCompiler()
    if compiler is None:
        msg = ("MOA learners need a full JDK (with its compiler), not only a Java runtime: install one "
               "(Debian: apt-get install openjdk-17-jdk-headless) or point JAVA_HOME at one")  # fmt: skip
        raise LearnerError(msg)
    system = jpype.JClass("java.lang.System")
    out = Path(tempfile.mkdtemp(prefix="headwater-moa-"))
    try:
        errors = jpype.JClass("java.io.ByteArrayOutputStream")()
        args = ["-d", str(out), "-cp", str(system.getProperty("java.class.path")), "-nowarn",
                "-XDsuppressNotes", str(_BRIDGE_SOURCE)]  # fmt: skip
        if compiler.run(None, None, errors, jpype.JArray(jpype.JString)(args)) != 0:
            msg = f"could not compile {_BRIDGE_SOURCE.name}: {errors.toString()}"
            raise LearnerError(msg)
        url = jpype.JClass("java.io.File")(str(out)).toURI().toURL()
        loader = jpype.JClass("java.net.URLClassLoader")(
            jpype.JArray(jpype.JClass("java.net.URL"))([url]),
            jpype.JClass("java.lang.ClassLoader").getSystemClassLoader(),
        )
        for path in sorted(out.rglob("*.class")):  # load every class now: the folder goes next
            loader.loadClass(".".join(path.relative_to(out).with_suffix("").parts))
        return jpype.JClass("headwater.MoaBridge", loader=loader)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _built(cls_name: str, n_features: int, n_classes: int, feature_names: Sequence[str] | None,
           seed: int, params: Mapping[str, Any], categories: Categories | None = None) -> MoaLearner:  # fmt: skip
    names = list(feature_names or [f"x{i}" for i in range(n_features)])
    jvm = _Jvm.get()
    cls = getattr(moa_module("capymoa.classifier"), cls_name)
    kwargs = {key: _detector(value) if key.endswith("detection_method") else value for key, value in params.items()}
    try:
        made = cls(schema=jvm.capymoa_schema(names, n_classes, categories), random_seed=seed, **kwargs)
    except TypeError as exc:
        msg = f"{cls_name} rejected its parameters {dict(params)}: {exc}"
        raise LearnerError(msg) from exc
    return MoaLearner(made.moa_learner, n_features, n_classes, names, categories)


def _detector(value: Any) -> Any:
    """A drift detector from the config: ``"ADWIN"`` or ``{"name": "ADWIN", "delta": 0.001}`` (a
    class of `capymoa.drift.detectors`); anything else (a MOA CLI string) is passed on as it is."""
    detectors = moa_module("capymoa.drift.detectors")
    if isinstance(value, str) and hasattr(detectors, value):
        return getattr(detectors, value)()
    if isinstance(value, Mapping):
        options = dict(value)
        name = options.pop("name", None)
        if not isinstance(name, str) or not hasattr(detectors, name):
            msg = f"drift detector {value!r}: 'name' must be a class of capymoa.drift.detectors, e.g. 'ADWIN'"
            raise LearnerError(msg)
        return getattr(detectors, name)(**options)
    return value


def adaptive_random_forest(
    n_features: int, n_classes: int, feature_names: Sequence[str] | None = None, seed: int = 0,
    ensemble_size: int = 10, categories: Categories | None = None, **params: Any,
) -> MoaLearner:  # fmt: skip
    """MOA's Adaptive Random Forest (``moa-arf``): Hoeffding trees on resampled data and random
    feature subsets, each with drift detection and a background tree. 10 members by default (CapyMOA
    says 100: ten times slower, and on 2 cores it could not follow a few thousand events/s)."""
    return _built("AdaptiveRandomForestClassifier", n_features, n_classes, feature_names, seed,
                  {"ensemble_size": ensemble_size, **params}, categories)  # fmt: skip


def streaming_random_patches(
    n_features: int, n_classes: int, feature_names: Sequence[str] | None = None, seed: int = 0,
    ensemble_size: int = 10, categories: Categories | None = None, **params: Any,
) -> MoaLearner:  # fmt: skip
    """MOA's Streaming Random Patches (``moa-srp``): bagging over random feature subsets; 10 members."""
    return _built("StreamingRandomPatches", n_features, n_classes, feature_names, seed,
                  {"ensemble_size": ensemble_size, **params}, categories)  # fmt: skip


def leveraging_bagging(
    n_features: int, n_classes: int, feature_names: Sequence[str] | None = None, seed: int = 0,
    ensemble_size: int = 10, categories: Categories | None = None, **params: Any,
) -> MoaLearner:  # fmt: skip
    """MOA's Leveraging Bagging (``moa-levbag``): heavier resampling and ADWIN per member; 10 members."""
    return _built("LeveragingBagging", n_features, n_classes, feature_names, seed,
                  {"ensemble_size": ensemble_size, **params}, categories)  # fmt: skip


def hoeffding_adaptive_tree(
    n_features: int, n_classes: int, feature_names: Sequence[str] | None = None, seed: int = 0,
    categories: Categories | None = None, **params: Any,
) -> MoaLearner:  # fmt: skip
    """MOA's Hoeffding Adaptive Tree (``moa-hat``): replaces branches that stop working after a drift."""
    return _built("HoeffdingAdaptiveTree", n_features, n_classes, feature_names, seed, params, categories)


def efdt(
    n_features: int, n_classes: int, feature_names: Sequence[str] | None = None, seed: int = 0,
    categories: Categories | None = None, **params: Any,
) -> MoaLearner:  # fmt: skip
    """MOA's Extremely Fast Decision Tree (``moa-efdt``): splits early and revisits its splits."""
    return _built("EFDT", n_features, n_classes, feature_names, seed, params, categories)
