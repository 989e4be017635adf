"""Label quarantine: whether a micro-batch's labels may be learned, or are held back as suspect.

A burst of wrong labels (a labeller that flips a third of its answers, a pipeline that suddenly
labels everything one class) teaches every model at once and moves every score: the vote's
weights, the trials, the change detector. `LabelQuarantine` watches what serving already knows
for each labelled example before anything learns it: whether the served prediction was right, and
the label's class. Against a reference (both faded over the examples learned before, ``fade`` per
example), the last ``window`` labelled examples show

- a **loss spike**: the served error rate above the reference by more than ``margin`` and by
  more than Hoeffding's bound at ``delta`` (one-sided, on the window's size), or
- a **label shift**: a class's share of the labels moved by more than ``shift`` and that bound.

Either engages the quarantine (`Ruling` ``engage``): that batch's labels and those after it are
held (``hold``), not learned, not counted. It ends in one of three ways:

- **clear**: the window is back within half the margins of the reference (the burst is over):
  the held labels are dropped (they stay on the quarantine topic for an operator) — unless
  learning them helped a probe (below) by a standard deviation or more since it engaged: a
  passing change, not wrong labels; they are then released;
- **release**, the labels were learnable: a *probe* (a copy of a model that learns, learning the
  held labels in order, each scored before it is learned; there may be several) beat its frozen
  *twin* (the same model as the quarantine engaged, learning nothing), and serving, on its last
  ``probe_window`` held examples by ``margin / 2`` and a sign test at ``delta`` — what a change in
  the data looks like, since flipped labels teach nothing a model that knew the concept did not
  know (a model still learning it gains from them, but does not come to beat one that knows it).
  Probe and twin start from one state, so a probe fresher than what serves proves nothing;
- **release**, the labels were known: a twin beat *serving* on the held examples by the same test —
  a candidate that learned the new concept from labels before the quarantine engaged (or a
  recurring one) predicts the held labels without learning them; random wrong labels no model
  predicts. Else the quarantine would hold the very evidence that promotes that candidate;
- **release**, lasting: ``max_hold`` labelled examples were held and it has not cleared;
  or an operator released it. Released labels are learned, in order.

Nothing is judged before ``warmup`` labelled examples made the reference. Pure and deterministic:
the caller runs the probe and hands over its correctness (`probed`); the state is a few numbers
and a short deque (snapshotted with the train step's state).

>>> q = LabelQuarantine(2, window=100, warmup=200)
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 300)
>>> q.judge(rng.random(300) > 0.05, y).action.value  # 5 % wrong: learned, and the reference
'learn'
>>> q.judge(rng.random(100) > 0.45, rng.integers(0, 2, 100)).action.value  # 45 % wrong
'engage'
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Action", "LabelQuarantine", "Ruling"]


class Action(enum.StrEnum):
    LEARN = "learn"  # not quarantined: learn the batch
    ENGAGE = "engage"  # the batch starts a quarantine: hold it
    HOLD = "hold"  # quarantined: hold it
    CLEAR = "clear"  # the signal is gone: learn this batch, drop the held ones
    RELEASE = "release"  # learn the held batches, then this one


@dataclass(frozen=True)
class Ruling:
    action: Action
    reason: str = ""


class LabelQuarantine:
    """See the module's docstring. ``n_classes``: the classes labels are indices of."""

    def __init__(
        self,
        n_classes: int,
        *,
        window: int = 300,
        fade: float = 0.999,
        margin: float = 0.15,
        shift: float = 0.25,
        delta: float = 1e-3,
        warmup: int = 1000,
        max_hold: int = 5000,
        probe_window: int = 100,
    ) -> None:
        if n_classes < 2 or window < 10 or not 0 < fade < 1 or not 0 < margin < 1 or not 0 < shift < 1:
            msg = f"quarantine: n_classes >= 2, window >= 10, fade, margin and shift in (0, 1); got {locals()}"
            raise ValueError(msg)
        if not 0 < delta < 1 or warmup < window or max_hold < window or probe_window < 10:
            msg = f"quarantine: delta in (0, 1), warmup and max_hold at least the window ({window})"
            raise ValueError(msg)
        self.n_classes = n_classes
        self.window = window
        self.fade = fade
        self.margin = margin
        self.shift = shift
        self.delta = delta
        self.warmup = warmup
        self.max_hold = max_hold
        self.probe_window = probe_window
        self._seen = 0  # labelled examples in the reference
        self._error = 0.0  # faded served error of the examples learned
        self._shares = np.zeros(n_classes)  # faded class shares of the labels learned
        self._weight = 0.0  # the faded count behind both
        self._recent: deque[tuple[int, int, npt.NDArray[np.int64]]] = deque()  # (n, errors, class counts)
        # per probe and comparison, the held examples scored: (n, the first only right, the second only right)
        self._probes: dict[tuple[int, str], deque[tuple[int, int, int]]] = {}
        # per probe since it engaged, in all: (better, worse) than its twin, then than serving
        self._gains: dict[int, tuple[int, int, int, int]] = {}
        self.engaged = False
        self.reason = ""
        self.held = 0  # labelled examples held since the quarantine engaged

    # -- the caller's side ------------------------------------------------------------------------

    def judge(self, correct: npt.NDArray[np.bool_], y: npt.NDArray[np.int64]) -> Ruling:
        """Rule on the next batch's labels: ``correct`` whether serving got each right (examples it
        did not serve count as right), ``y`` their classes. Called before anything learns them."""
        n = len(y)
        if n == 0:
            return Ruling(Action.HOLD if self.engaged else Action.LEARN)
        errors = int(n - np.count_nonzero(correct))
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=self.n_classes)[: self.n_classes]
        self._push(n, errors, counts)
        if not self.engaged:
            signal = self._signal(self.margin, self.shift) if self._seen >= self.warmup else None
            if signal is None:
                self._learn(n, errors, counts)
                return Ruling(Action.LEARN)
            self.engaged, self.reason, self.held = True, signal, n
            self._probes.clear()
            self._gains.clear()
            return Ruling(Action.ENGAGE, signal)
        if self._signal(self.margin / 2, self.shift / 2, bound=False) is None:
            helped = self._helped()
            if helped is not None:  # a transient change, not wrong labels: learn them after all
                why = f"the signal cleared after {self.held:,} held labels, and {helped}"
                self._end(anew=True)
                return Ruling(Action.RELEASE, why)
            why = f"cleared after {self.held:,} held labels: {self._recent_text()}"
            self._end()
            self._learn(n, errors, counts)
            return Ruling(Action.CLEAR, why)
        self.held += n
        if self.held >= self.max_hold:
            why = f"lasting: {self.held:,} labels held ({self.max_hold:,} at most), {self._recent_text()}"
            self._end(anew=True)
            return Ruling(Action.RELEASE, why)
        return Ruling(Action.HOLD, self.reason)

    def probed(
        self,
        pairs: Sequence[tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]],
        served: npt.NDArray[np.bool_] | None = None,
    ) -> Ruling:
        """Per probe, on held examples: whether its frozen twin (the same model as the quarantine
        engaged, learning nothing) got each right, and whether the probe, learning them in order,
        did (each scored before it learned it); ``served``: whether serving got each right.
        ``release`` once one probe is the better of its pair, and better than serving, over its
        last ``probe_window`` held examples — or one twin is better than serving: a model that
        learned only labels from before already predicts the held ones (a candidate that learned
        the new concept before the quarantine engaged; random wrong labels no model predicts). See
        the module's docstring."""
        if not self.engaged or not pairs:
            return Ruling(Action.HOLD if self.engaged else Action.LEARN)
        for k, (frozen, probe) in enumerate(pairs):
            if not len(frozen):
                continue
            gained, lost = int(np.count_nonzero(probe & ~frozen)), int(np.count_nonzero(frozen & ~probe))
            won = self._won((k, "learning"), len(frozen), gained, lost)
            over = (gained, lost)
            if served is not None and len(served) == len(frozen):
                # ... and better than what serves: a model still learning the concept gains from
                # labels a third of which are flipped too (an MLP on Agrawal, 27 to 4 over 108 held
                # labels near the end of such a burst), but it does not beat a model that knows it.
                over = int(np.count_nonzero(probe & ~served)), int(np.count_nonzero(served & ~probe))
                if self._won((k, "over serving"), len(frozen), *over) is None:
                    won = None
            total = self._gains.get(k, (0, 0, 0, 0))
            self._gains[k] = (total[0] + gained, total[1] + lost, total[2] + over[0], total[3] + over[1])
            why = None
            if won is not None:
                why = (f"learnable: a copy learning the held labels got {won[1]} right that it got wrong "
                       f"without learning them, {won[2]} the other way, in the last {won[0]} held labels: "
                       "a change in the data")  # fmt: skip
            elif served is not None and len(served) == len(frozen):
                known = int(np.count_nonzero(frozen & ~served)), int(np.count_nonzero(served & ~frozen))
                if (won := self._won((k, "known"), len(frozen), *known)) is not None:
                    why = (f"known: a candidate that learned none of them got {won[1]} of the last {won[0]} "
                           f"held labels right that serving got wrong, {won[2]} the other way: a change in the "
                           "data that a candidate already learned")  # fmt: skip
            if why is not None:
                self._end(anew=True)
                return Ruling(Action.RELEASE, why)
        return Ruling(Action.HOLD, self.reason)

    def _won(self, key: tuple[int, str], n: int, better: int, worse: int) -> tuple[int, int, int] | None:
        """One more held batch of a comparison (``better``: examples only the first got right,
        ``worse``: only the second): ``(n, better, worse)`` over its last ``probe_window`` held
        examples when the first is better by ``margin / 2`` and a sign test at ``delta``."""
        seen = self._probes.setdefault(key, deque())
        seen.append((n, better, worse))
        while sum(p[0] for p in seen) - seen[0][0] >= self.probe_window:
            seen.popleft()
        n = sum(p[0] for p in seen)
        better, worse = sum(p[1] for p in seen), sum(p[2] for p in seen)
        z = math.sqrt(2 * math.log(1 / self.delta))  # one-sided, sub-Gaussian tail at delta
        if n >= self.probe_window and better - worse >= max(self.margin / 2 * n, z * math.sqrt(better + worse)):
            return n, better, worse
        return None

    def release(self) -> None:
        """An operator's release: the quarantine ends (the caller learns or drops what was held), and
        a new reference is made."""
        self._end(anew=True)

    # -- inside ---------------------------------------------------------------------------------

    def _push(self, n: int, errors: int, counts: npt.NDArray[np.int64]) -> None:
        self._recent.append((n, errors, counts))
        while sum(r[0] for r in self._recent) - self._recent[0][0] >= self.window:
            self._recent.popleft()

    def _learn(self, n: int, errors: int, counts: npt.NDArray[np.int64]) -> None:
        kept = self._weight * self.fade**n  # n examples, each fading what came before by ``fade``
        self._weight = kept + n
        self._error = (self._error * kept + errors) / self._weight
        self._shares = (self._shares * kept + counts) / self._weight
        self._seen += n

    def _window(self) -> tuple[int, float, npt.NDArray[np.float64]]:
        n = sum(r[0] for r in self._recent)
        errors = sum(r[1] for r in self._recent)
        counts = np.sum([r[2] for r in self._recent], axis=0)
        return n, errors / n, counts / n

    def _signal(self, margin: float, shift: float, *, bound: bool = True) -> str | None:
        n, error, shares = self._window()
        if n < min(self.window, 100):
            return None
        slack = math.sqrt(math.log(1 / self.delta) / (2 * n)) if bound else 0.0
        if error - self._error > max(margin, slack):
            return f"loss spike: serving got {error:.1%} of the last {n} labels wrong, {self._error:.1%} before"
        gained = shares - self._shares
        k = int(np.argmax(gained))  # the class that gained most (another may have lost as much)
        if np.max(np.abs(gained)) > max(shift, slack):
            return (f"label shift: class {k} is {shares[k]:.1%} of the last {n} labels, "
                    f"{self._shares[k]:.1%} before")  # fmt: skip
        return None

    def _helped(self) -> str | None:
        """Whether learning the held labels helped a probe, in all since it engaged, over its twin
        and over serving (each by at least a standard deviation of the difference): then they are
        released as it clears, not dropped."""
        for better, worse, over, under in self._gains.values():
            if better - worse >= max(1.0, math.sqrt(better + worse)) and over - under >= max(
                1.0, math.sqrt(over + under)
            ):
                return f"learning them helped a copy ({better} right that it got wrong without, {worse} the other way)"
        return None

    def _recent_text(self) -> str:
        n, error, _ = self._window()
        return f"serving wrong on {error:.1%} of the last {n} labels ({self._error:.1%} before)"

    def _end(self, *, anew: bool = False) -> None:
        """Out of quarantine; ``anew``: the labels were released, the data changed — a new reference
        is made (``warmup`` labelled examples) before anything is judged again."""
        self.engaged, self.reason, self.held = False, "", 0
        self._probes.clear()
        self._gains.clear()
        if anew:
            self._seen, self._error, self._weight = 0, 0.0, 0.0
            self._shares[:] = 0.0
            self._recent.clear()
