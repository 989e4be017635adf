"""A synthetic, drifting, slightly broken stream for the demo, the tests and the benchmarks.

Events come from River's SEA generator; at ``drift_at`` the concept changes abruptly (SEA's
threshold moves, so a band of the feature space changes class; with ``flip_after_drift`` the
classes also swap, until ``swap_until`` if set: a concept that comes back). A label-flip attack
(``noisy_from``..``noisy_until``) sends a share of wrong labels; ``truth`` keeps the right ones.
Labels come inline, later on the labels topic, or never. Every ``malformed_every`` events a broken
record of a different kind is slipped in, and a few labels name events that do not exist: the flow
must dead-letter all of them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import orjson
from river.datasets import synth

from dataflows.records import DeadLetterReason

__all__ = ["FEATURES", "WorkItem", "Workload", "WorkloadSpec"]

FEATURES = ("x1", "x2", "x3")
CLASSES = (0, 1)


@dataclass(frozen=True)
class WorkloadSpec:
    n_events: int = 20_000
    drift_at: int = 10_000
    before_variant: int = 3  # SEA threshold 9.5
    after_variant: int = 2  # SEA threshold 7
    flip_after_drift: bool = False  # also swap the classes after the drift: the strongest change there is
    swap_until: int | None = None  # with flip_after_drift: the first concept returns here (a recurring concept)
    noisy_from: int = 0  # a label-flip attack: from this event ...
    noisy_until: int = 0  # ... to this one, ``noisy_share`` of the labels *sent* are wrong (truth is not)
    noisy_share: float = 0.0
    inline_share: float = 0.5
    delayed_share: float = 0.4  # the rest never gets a label
    label_delay: int = 300  # a delayed label is sent this many events after its event
    malformed_every: int = 400
    unmatched_labels: int = 5
    max_event_bytes: int = 64 * 1024
    seed: int = 7


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One message to produce. ``expect`` is the dead-letter reason it must get, if any;
    ``labelled`` says whether the model may learn from it (an inline label, or a valid label)."""

    kind: Literal["events", "labels"]
    key: bytes | None
    value: bytes | None
    event_index: int | None = None
    expect: DeadLetterReason | None = None
    labelled: bool = False


@dataclass
class Workload:
    """The stream and what a correct flow must make of it."""

    spec: WorkloadSpec
    truth: dict[str, int] = field(default_factory=dict)  # event id -> true class
    order: list[str] = field(default_factory=list)  # valid event ids in generation order

    def items(self) -> Iterator[WorkItem]:
        spec = self.spec
        self.truth.clear()  # each pass regenerates the same stream
        self.order.clear()
        rng = random.Random(spec.seed)
        attacker = random.Random(spec.seed + 1000)  # its own draws: the rest of the stream is unchanged
        before = synth.SEA(variant=spec.before_variant, seed=spec.seed)
        after = synth.SEA(variant=spec.after_variant, seed=spec.seed + 1)
        stream = itertools.chain(itertools.islice(before, spec.drift_at), after)
        delayed: list[tuple[int, WorkItem]] = []
        n_broken = 0
        for i, (x, y) in enumerate(itertools.islice(stream, spec.n_events)):
            while delayed and delayed[0][0] <= i:
                yield delayed.pop(0)[1]
            if spec.malformed_every and i and i % spec.malformed_every == 0:
                n_broken += 1
                yield _broken(n_broken, spec)
            event_id = f"e{i:08d}"
            swapped = spec.flip_after_drift and i >= spec.drift_at and (spec.swap_until is None or i < spec.swap_until)
            truth = int(y) ^ int(swapped)
            self.truth[event_id] = truth
            attacked = spec.noisy_from <= i < spec.noisy_until and attacker.random() < spec.noisy_share
            label = truth ^ int(attacked)
            self.order.append(event_id)
            body: dict[str, object] = {"id": event_id, "features": {f"x{k + 1}": v for k, v in x.items()}}
            draw = rng.random()
            if draw < spec.inline_share:
                body["label"] = label
            elif draw < spec.inline_share + spec.delayed_share:
                value = orjson.dumps({"id": event_id, "label": label})
                delayed.append((i + spec.label_delay, WorkItem("labels", event_id.encode(), value, i, labelled=True)))
            yield WorkItem("events", event_id.encode(), orjson.dumps(body), i, labelled="label" in body)
        for _, item in delayed:
            yield item
        for k in range(spec.unmatched_labels):
            value = orjson.dumps({"id": f"ghost{k}", "label": 1})
            yield WorkItem("labels", f"ghost{k}".encode(), value, None, DeadLetterReason.LABEL_UNMATCHED)
        yield WorkItem("labels", b"badlabel", b'{"id": "x", "label": ', None, DeadLetterReason.BAD_JSON)

    @property
    def n_malformed_events(self) -> int:
        spec = self.spec
        return (spec.n_events - 1) // spec.malformed_every if spec.malformed_every else 0


# One broken record of each kind, in turn; "%d" becomes the record's number.
_BROKEN: tuple[tuple[DeadLetterReason, bytes | None], ...] = (
    (DeadLetterReason.BAD_JSON, b'{"id": "bad%d", "features": {"x1": '),
    (DeadLetterReason.MISSING_FIELD, b'{"id": "bad%d"}'),
    (DeadLetterReason.EXTRA_FIELD, b'{"id": "bad%d", "features": [1, 2, 3], "colour": "red"}'),
    (DeadLetterReason.WRONG_DIMENSION, b'{"id": "bad%d", "features": [1.0, 2.0]}'),
    (DeadLetterReason.NON_FINITE, b'{"id": "bad%d", "features": [1.0, 1e999, 2.0]}'),
    (DeadLetterReason.WRONG_TYPE, b'{"id": "bad%d", "features": [1.0, "two", 3.0]}'),
    (DeadLetterReason.MISSING_FIELD, b'{"id": "bad%d", "features": {"x1": 1.0, "x2": 2.0}}'),
    (DeadLetterReason.OVERSIZED, b'{"id": "bad%d", "features": [1, 2, 3], "pad": "PAD"}'),
    (DeadLetterReason.UNKNOWN_CLASS, b'{"id": "bad%d", "features": [1, 2, 3], "label": 7}'),
    (DeadLetterReason.OUT_OF_RANGE, b'{"id": "bad%d", "features": [1, 2, 1e300]}'),
    (DeadLetterReason.EMPTY_PAYLOAD, None),
)


def _broken(n: int, spec: WorkloadSpec) -> WorkItem:
    reason, template = _BROKEN[(n - 1) % len(_BROKEN)]
    value = None if template is None else (template % n).replace(b"PAD", b"x" * spec.max_event_bytes)
    return WorkItem("events", f"bad{n}".encode(), value, None, reason)
