"""The golden set from a file: JSON lines of labelled events, in the events topic's format.

Each line is decoded exactly as an event from Kafka would be (`dataflows.decode.Decoder`), so a
golden set can be cut from the events topic itself. A line that would be dead-lettered, or an
event without a label, makes the whole file unusable: a golden set is trusted, so it is all or
nothing, and the error names the line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from daemon.config import ConfigError
from dataflows import DeadLetter, Decoder, Event, FeatureSchema, GoldenSet, RawMessage
from dataflows.train import GOLDEN_MIN_SIZE

__all__ = ["load_golden"]


def load_golden(path: Path, schema: FeatureSchema) -> GoldenSet:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        msg = f"promotion.golden_path: cannot read {path}: {exc}"
        raise ConfigError(msg) from exc
    decoder = Decoder(schema, "golden", None)
    xs: list[list[float]] = []
    ys: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = decoder(RawMessage(None, line, "golden", 0, number))
        if isinstance(record, DeadLetter):
            msg = f"promotion.golden_path: {path} line {number}: {record.reason.value}: {record.detail}"
            raise ConfigError(msg)
        if not isinstance(record, Event) or record.label is None:
            msg = f"promotion.golden_path: {path} line {number}: a golden example needs a label"
            raise ConfigError(msg)
        xs.append(record.x)
        ys.append(record.label)
    if len(ys) < GOLDEN_MIN_SIZE:
        msg = (f"promotion.golden_path: {path} holds {len(ys)} examples; a golden set needs at least "
               f"{GOLDEN_MIN_SIZE} to check anything (with fewer, no candidate could ever be promoted)")  # fmt: skip
        raise ConfigError(msg)
    x = np.asarray(xs, dtype=np.float64)
    return GoldenSet(x, np.asarray(ys, dtype=np.int64), source=str(path))
