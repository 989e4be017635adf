"""Change in the data, seen through a model's errors: River's ADWIN over per-example scores.

A detector is a signal, not a verdict: it says *when* the mean of a stream of scores moved (and
from what to what), and the gate decides what that means. Headwater watches the frozen champion's
correctness on fresh labels: since the champion never learns, a shift there is a shift in the data
(a concept drift, or a burst of wrong labels), and evidence gathered before it says nothing about
the candidates after it.

>>> import numpy as np
>>> watch = ChangeDetector()
>>> watch.update(np.ones(2000))
>>> watch.update(np.zeros(200))
>>> watch.changed
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from river import drift

__all__ = ["Change", "ChangeDetector"]


@dataclass(frozen=True)
class Change:
    """The mean of the watched scores before and after the change ADWIN found."""

    before: float
    after: float
    n: int  # scores seen when it was found


class ChangeDetector:
    """ADWIN (Bifet & Gavaldà 2007) over a stream of scores in [0, 1].

    ``delta`` is ADWIN's confidence: smaller finds fewer, surer changes. ``update`` takes a batch;
    `changed` and `last` say whether, and how, the batch moved the mean.
    """

    def __init__(self, delta: float = 0.002) -> None:
        if not 0 < delta < 1:
            msg = f"delta must be in (0, 1), got {delta}"
            raise ValueError(msg)
        self.delta = delta
        self._adwin = drift.ADWIN(delta=delta)
        self.n = 0
        self.changed = False
        self.last: Change | None = None

    def reset(self) -> None:
        self._adwin = drift.ADWIN(delta=self.delta)
        self.n = 0
        self.changed = False
        self.last = None

    def update(self, scores: npt.NDArray[np.float64]) -> None:
        self.changed = False
        adwin = self._adwin
        for value in scores.tolist():
            before = adwin.estimation
            adwin.update(value)
            self.n += 1
            if adwin.drift_detected:
                self.changed = True
                self.last = Change(before=float(before), after=float(adwin.estimation), n=self.n)
