"""A weighted vote over a portfolio of models: exponential weights with a fixed share, guarded by
the member that has done best lately.

No single online learner wins on every stream, and which one leads changes with the data. Each
member scores every labelled example before it learns it (prequential); after each labelled
example every member's weight is multiplied by ``exp(-eta * loss)`` (its 0/1 loss: Hedge,
Freund & Schapire 1997), then a ``share`` of the total is spread evenly over the members (fixed
share, Herbster & Warmuth 1998): a member beaten for a long time keeps at least about
``share / n`` of the weight, so it takes the lead again within about ``log(n / share) / eta``
examples once it is the better one after a drift. The vote is the weighted average of the
members' class probabilities.

A vote can be worse than its best member (many weak members that agree): the vote is scored on
the same labels as its members, with the weights it had when it would have served them, and
``choice`` serves whichever of the vote and the member with the best faded accuracy (its recent
accuracy, older examples fading by ``fade`` per example) has done better lately. A member that
did not score an example (it fell behind and skipped a batch) neither gains nor loses weight on it
against the others: it is charged the weighted loss of those that scored it.

Pure and deterministic: no clock, no randomness; the state is a few numpy arrays (snapshotted
with the train step's state).

>>> vote = WeightedVote(["a", "b"], eta=1.0, share=0.0)
>>> y = np.array([1, 1])
>>> right, wrong = np.array([[0.2, 0.8], [0.3, 0.7]]), np.array([[0.9, 0.1], [0.6, 0.4]])
>>> vote.update({"a": right, "b": wrong}, y)
>>> {k: round(v, 3) for k, v in vote.weights().items()}
{'a': 0.881, 'b': 0.119}
>>> vote.combine({"a": right, "b": wrong}).round(2).tolist()
[[0.28, 0.72], [0.34, 0.66]]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["VOTE", "WeightedVote"]

VOTE = "vote"  # what `WeightedVote.choice` answers when the vote itself serves

Probas = npt.NDArray[np.float64]


class WeightedVote:
    """Exponential weights with a fixed share over named members; see the module's docstring.

    ``eta``: how fast weight moves to the members that are right (per 0/1 loss); ``share``: the
    part of the weight spread evenly after each example; ``fade``: how fast old examples fade
    from the faded accuracies the guard compares (0.995: a half-life of about 140 examples).
    """

    def __init__(self, members: Sequence[str], *, eta: float = 0.5, share: float = 0.002, fade: float = 0.995) -> None:
        if not members or len(set(members)) != len(members):
            msg = f"a vote needs one or more members, each named once; got {list(members)}"
            raise ValueError(msg)
        if eta <= 0 or not 0 <= share < 1 or not 0 < fade < 1:
            msg = f"eta must be > 0, share in [0, 1), fade in (0, 1); got eta={eta}, share={share}, fade={fade}"
            raise ValueError(msg)
        self.eta, self.share, self.fade = eta, share, fade
        self._names: list[str] = list(members)
        self._w = np.full(len(members), 1.0 / len(members))
        # faded accuracy as (right, seen), members' then the vote's last
        self._right = np.zeros(len(members) + 1)
        self._seen = np.zeros(len(members) + 1)

    @property
    def members(self) -> list[str]:
        return list(self._names)

    def weights(self) -> dict[str, float]:
        """Each member's share of the vote (they sum to 1)."""
        return {name: float(w) for name, w in zip(self._names, self._w, strict=True)}

    def faded_accuracy(self) -> dict[str, float | None]:
        """Each member's and the vote's (``VOTE``) recent accuracy; None before any example."""
        names = [*self._names, VOTE]
        return {n: (float(r / s) if s > 0 else None) for n, r, s in zip(names, self._right, self._seen, strict=True)}

    def leader(self) -> str:
        """The member with the best faded accuracy (the first named, before any evidence)."""
        acc = np.where(self._seen[:-1] > 0, self._right[:-1] / np.maximum(self._seen[:-1], 1e-300), -1.0)
        return self._names[int(np.argmax(acc))]

    def choice(self) -> str:
        """What should serve: ``VOTE``, or the leading member where it has done better lately than
        the vote (a tie, or no evidence yet, is the vote's)."""
        leader = self._names.index(self.leader())
        if self._seen[-1] == 0 or self._seen[leader] == 0:
            return VOTE
        vote_acc, leader_acc = self._right[-1] / self._seen[-1], self._right[leader] / self._seen[leader]
        return self._names[leader] if leader_acc > vote_acc else VOTE

    def combine(self, probas: Mapping[str, Probas]) -> Probas:
        """The vote's class probabilities: the members' ``(n, classes)`` probabilities averaged
        with their weights. A member missing from ``probas``, or whose row is NaN, is left out of
        that row (the others' weights renormalised)."""
        stack = self._stack(probas)
        return self._combine(stack, self._w)

    def update(self, probas: Mapping[str, Probas], y: npt.ArrayLike) -> None:
        """Learn from labelled examples ``y`` (class indices), which every member in ``probas``
        scored (``(n, classes)``, each row its probabilities before it learned the example; NaN
        rows or a missing member: not scored). The vote is scored as it would have served them."""
        labels = np.asarray(y, dtype=np.int64)
        stack = self._stack(probas)
        if stack.shape[1] != len(labels):
            msg = f"{len(labels)} labels but {stack.shape[1]} rows of probabilities"
            raise ValueError(msg)
        scored = ~np.isnan(stack[:, :, 0])  # (members, n)
        right = np.zeros(stack.shape[:2])
        right[scored] = (np.argmax(np.nan_to_num(stack, nan=-1.0), axis=2) == labels[None, :])[scored]
        loss = 1.0 - right
        self._w, vote_right = self._recursion(stack, loss, scored, labels)
        self._fade(right, scored, vote_right)

    def add(self, name: str) -> None:
        """A new member, with an even share of the weight and no evidence yet."""
        if name in self._names:
            msg = f"{name!r} is a member already"
            raise ValueError(msg)
        n = len(self._names) + 1
        self._w = np.append(self._w * (1.0 - 1.0 / n), 1.0 / n)
        self._names.append(name)
        self._right = np.insert(self._right, -1, 0.0)
        self._seen = np.insert(self._seen, -1, 0.0)

    def remove(self, name: str) -> None:
        """Take ``name`` out of the vote; the others' weights are renormalised."""
        if name not in self._names or len(self._names) == 1:
            msg = f"cannot remove {name!r} from {self._names}: not a member, or the last one"
            raise ValueError(msg)
        i = self._names.index(name)
        self._names.pop(i)
        w = np.delete(self._w, i)
        self._w = w / w.sum()
        self._right, self._seen = np.delete(self._right, i), np.delete(self._seen, i)

    # -- internals ------------------------------------------------------------------------------

    def _recursion(
        self,
        stack: npt.NDArray[np.float64],
        loss: npt.NDArray[np.float64],
        scored: npt.NDArray[np.bool_],
        labels: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """`update`'s fixed-share recursion, example by example in Python floats (numpy's per-call
        overhead on arrays of a few members was a quarter of the train step's profile: 29 µs an
        example, now 4 to 6). A member that did not score an example is charged the mix's loss on
        it, and the vote that example is the present members' (none present: not right, no step)."""
        m, n, k = stack.shape
        w = self._w.tolist()
        keep, spread, eta = 1.0 - self.share, self.share / m, self.eta
        probs = stack.transpose(1, 0, 2).tolist()  # (n, m, k)
        losses = loss.T.tolist()  # (n, m)
        present: list[list[bool]] = scored.T.tolist()  # (n, m)
        everyone = [all(row) for row in present]  # (n,)
        ys = labels.tolist()
        vote_right = [0.0] * n
        members, classes = range(m), range(k)
        for t in range(n):
            p_t, l_t = probs[t], losses[t]
            has = members if everyone[t] else [i for i in members if present[t][i]]
            if not has:
                continue
            total = sum(w[i] for i in has)
            voted = [sum(w[i] * p_t[i][c] for i in has) / total for c in classes]
            best = max(classes, key=voted.__getitem__)  # the first of equals, as np.argmax
            vote_right[t] = 1.0 if best == ys[t] else 0.0
            if not everyone[t]:
                mix = sum(w[i] * l_t[i] for i in has) / total
                l_t = [l_t[i] if present[t][i] else mix for i in members]
            step = [w[i] * math.exp(-eta * l_t[i]) for i in members]
            s = sum(step)
            w = [keep * v / s + spread for v in step]
        weights = np.asarray(w)
        return weights / weights.sum(), np.asarray(vote_right)

    def _stack(self, probas: Mapping[str, Probas]) -> npt.NDArray[np.float64]:
        unknown = set(probas) - set(self._names)
        if unknown:
            msg = f"not members of the vote: {sorted(unknown)} (members: {self._names})"
            raise ValueError(msg)
        shapes = {np.shape(p) for p in probas.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            msg = f"each member's probabilities must be one (n, classes) array of the same shape; got {shapes}"
            raise ValueError(msg)
        (shape,) = shapes
        stack = np.full((len(self._names), *shape), np.nan)
        for i, name in enumerate(self._names):
            if name in probas:
                stack[i] = probas[name]
        return stack

    @staticmethod
    def _combine(stack: npt.NDArray[np.float64], w: npt.NDArray[np.float64]) -> Probas:
        present = ~np.isnan(stack[:, :, 0])  # (members, n)
        weights = np.where(present, w[:, None], 0.0)
        total = weights.sum(axis=0)  # (n,)
        summed = np.einsum("mn,mnk->nk", weights, np.nan_to_num(stack, nan=0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            out: Probas = summed / total[:, None]
        return out

    def _fade(self, right: npt.NDArray[np.float64], scored: npt.NDArray[np.bool_], vote_right: Probas) -> None:
        """Fold a batch into the faded accuracies, example by example in closed form: after ``n``
        examples, an example ``j`` from the end counts ``fade ** j``."""
        n = right.shape[1]
        decay = self.fade ** np.arange(n - 1, -1, -1, dtype=np.float64)  # the last example counts 1
        all_right = np.vstack([right * scored, vote_right[None, :]])
        all_seen = np.vstack([scored.astype(np.float64), np.ones((1, n))])
        factor = math.pow(self.fade, n)
        self._right = self._right * factor + all_right @ decay
        self._seen = self._seen * factor + all_seen @ decay
