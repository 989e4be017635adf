"""JSON for config and evidence: numpy scalars become plain numbers, NaN and infinities null.

Evidence comes from evaluators and often holds ``np.float64`` values and NaN ("not measured yet");
the registry stores what a person and any JSON reader can read back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["dumps", "loads", "plain"]


def plain(value: Any) -> Any:
    """``value`` made of dicts, lists, str, int, float (finite), bool and None only.

    >>> plain({"auc": np.float64("nan"), "n": np.int64(3), "w": np.array([0.5, 1.0]), 1: (float("inf"),)})
    {'auc': None, 'n': 3, 'w': [0.5, 1.0], '1': [None]}
    """
    if value is None or isinstance(value, bool | str | int):
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [plain(v) for v in items]
    return str(value)


def dumps(value: Any) -> str:
    return json.dumps(plain(value), allow_nan=False, separators=(",", ":"))


def loads(text: str) -> Any:
    return json.loads(text)
