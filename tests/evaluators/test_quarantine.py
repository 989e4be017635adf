"""`LabelQuarantine` on simulated serving: a steady stream, a label-flip burst, a change in the data
(with and without a probe that learns it), a label shift, an operator's release."""

from __future__ import annotations

import doctest
from collections.abc import Iterator

import numpy as np
import pytest

import evaluators.quarantine
from evaluators.quarantine import Action, LabelQuarantine

BATCH = 50


def batches(
    rng: np.random.Generator, n: int, error: float, share: float = 0.5
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``n`` examples in batches: whether serving was right (wrong with probability ``error``)
    and the class (1 with probability ``share``)."""
    for _ in range(n // BATCH):
        yield rng.random(BATCH) >= error, (rng.random(BATCH) < share).astype(np.int64)


def test_doctest() -> None:
    assert doctest.testmod(evaluators.quarantine).failed == 0


@pytest.mark.parametrize("seed", range(10))
def test_a_steady_stream_is_never_quarantined(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for error in (0.02, 0.1, 0.3):
        q = LabelQuarantine(2)
        assert {q.judge(c, y).action for c, y in batches(rng, 20_000, error)} == {Action.LEARN}


def test_a_flip_burst_is_held_then_cleared_and_the_probe_does_not_release_it() -> None:
    q, rng = LabelQuarantine(2), np.random.default_rng(1)
    for c, y in batches(rng, 10_000, 0.01):
        assert q.judge(c, y).action is Action.LEARN
    engaged_at, held, cleared_at = None, 0, None
    seen = 0
    # 35 % of the labels flipped for 3,000 examples: serving (right about the concept) is wrong on
    # them; a probe learning the flipped labels is no better than serving (a little worse)
    for i, (c, y) in enumerate(batches(rng, 6_000, 0.01)):
        flipped = (rng.random(BATCH) < 0.35) if i * BATCH < 3_000 else np.zeros(BATCH, bool)
        served = c ^ flipped
        ruling = q.judge(served, y)
        seen += BATCH
        if ruling.action is Action.ENGAGE:
            engaged_at = seen
            assert "loss spike" in ruling.reason
        if ruling.action in (Action.ENGAGE, Action.HOLD):
            held += BATCH
            twin = served  # the model as it was: right where serving is
            probe = served & (rng.random(BATCH) > 0.02)  # learning flipped labels: a little worse
            # a candidate that learned the first flipped labels before it engaged: no better either
            noisy = served ^ (rng.random(BATCH) < 0.05)
            # a model still learning the concept (wrong on a third more than serving as it engaged)
            # gains from the flipped labels too, but comes only as far as serving
            weak = served & (rng.random(BATCH) > 0.3)
            learning = served & (rng.random(BATCH) > 0.3 * max(0.0, 1 - held / 1_000))
            pairs = [(twin, probe), (noisy, noisy), (weak, learning)]
            assert q.probed(pairs, served=served).action is Action.HOLD
        if ruling.action is Action.CLEAR:
            cleared_at = seen
            assert "cleared" in ruling.reason
            break
        assert ruling.action is not Action.RELEASE
    assert engaged_at is not None and engaged_at <= 1_000
    assert cleared_at is not None and 3_000 < cleared_at <= 3_000 + q.window + BATCH
    assert held == cleared_at - engaged_at
    assert not q.engaged
    for c, y in batches(rng, 5_000, 0.01):  # the reference was kept: a steady stream again
        assert q.judge(c, y).action is Action.LEARN


def test_a_change_in_the_data_is_released_by_the_probe() -> None:
    q, rng = LabelQuarantine(2), np.random.default_rng(2)
    for c, y in batches(rng, 5_000, 0.05):
        q.judge(c, y)
    held, released = 0, None
    for c, y in batches(rng, 5_000, 0.45):  # serving is stuck on the old concept
        ruling = q.judge(c, y)
        if ruling.action in (Action.ENGAGE, Action.HOLD):
            held += BATCH
            probe = rng.random(BATCH) >= (0.45 if held < 300 else 0.08)  # it learns the new one
            ruling = q.probed([(c, probe)])
        if ruling.action is Action.RELEASE:
            released = ruling
            break
    assert released is not None and "learnable" in released.reason
    assert held <= 300 + q.probe_window + BATCH
    # a new reference is made before anything is judged again: the new level is not a spike
    assert {q.judge(c, y).action for c, y in batches(rng, 2_000, 0.2)} == {Action.LEARN}


def test_a_lasting_change_is_released_after_max_hold() -> None:
    q, rng = LabelQuarantine(2, max_hold=2_000), np.random.default_rng(3)
    for c, y in batches(rng, 5_000, 0.05):
        q.judge(c, y)
    rulings = [q.judge(c, y) for c, y in batches(rng, 3_000, 0.4)]
    actions = [r.action for r in rulings]
    assert Action.ENGAGE in actions
    i = actions.index(Action.RELEASE)
    assert "lasting" in rulings[i].reason
    assert (i - actions.index(Action.ENGAGE)) * BATCH == 2_000 - BATCH
    assert not q.engaged


def test_a_label_shift_engages_though_serving_is_as_right_as_before() -> None:
    q, rng = LabelQuarantine(2), np.random.default_rng(4)
    for c, y in batches(rng, 5_000, 0.1, share=0.5):
        q.judge(c, y)
    rulings = [q.judge(c, y) for c, y in batches(rng, 1_000, 0.1, share=0.97)]
    engaged = [r for r in rulings if r.action is Action.ENGAGE]
    assert len(engaged) == 1 and engaged[0].reason.startswith("label shift: class 1")


def test_nothing_is_judged_before_the_warmup_and_an_operator_releases() -> None:
    q, rng = LabelQuarantine(2, warmup=1_000), np.random.default_rng(5)
    assert {q.judge(c, y).action for c, y in batches(rng, 900, 0.5)} == {Action.LEARN}
    for c, y in batches(rng, 2_000, 0.02):
        q.judge(c, y)
    assert any(q.judge(c, y).action is Action.ENGAGE for c, y in batches(rng, 500, 0.6))
    q.release()
    assert not q.engaged
    assert {q.judge(c, y).action for c, y in batches(rng, 900, 0.6)} == {Action.LEARN}


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="n_classes"):
        LabelQuarantine(1)
    with pytest.raises(ValueError, match="max_hold"):
        LabelQuarantine(2, window=300, max_hold=100)


def test_one_probe_that_learns_the_change_is_enough() -> None:
    """Several probes (copies of several candidates): a slow one never beats its twin, a quick one
    does after about a hundred held labels, and it alone releases them."""
    q, rng = LabelQuarantine(2), np.random.default_rng(6)
    for c, y in batches(rng, 5_000, 0.05):
        q.judge(c, y)
    held, ruling = 0, None
    for c, y in batches(rng, 3_000, 0.5):
        ruling = q.judge(c, y)
        if ruling.action in (Action.ENGAGE, Action.HOLD):
            held += BATCH
            slow = c & (rng.random(BATCH) > 0.1)  # no better than its twin (which serving is, here)
            quick = rng.random(BATCH) >= (0.5 if held <= 50 else 0.1)
            ruling = q.probed([(c, slow), (c, quick)])
        if ruling.action is Action.RELEASE:
            break
    assert ruling is not None and ruling.action is Action.RELEASE and "learnable" in ruling.reason
    assert held <= 50 + q.probe_window + 2 * BATCH, held


def test_a_passing_change_that_learning_helped_is_released_as_it_clears_not_dropped() -> None:
    """A spike that goes away on its own, while learning the held labels helped a probe a little
    (not enough to release them at once): they are learned as it clears, not dropped."""
    q, rng = LabelQuarantine(2, probe_window=100_000), np.random.default_rng(7)  # no early release
    for c, y in batches(rng, 5_000, 0.02):
        q.judge(c, y)
    ruling = None
    for i, (c, y) in enumerate(batches(rng, 3_000, 0.02)):
        served = c & (rng.random(BATCH) > (0.4 if i < 10 else 0.0))  # 500 labels of a passing spike
        ruling = q.judge(served, y)
        if ruling.action in (Action.ENGAGE, Action.HOLD):
            twin = served
            probe = served | (rng.random(BATCH) < 0.1)  # learning them helps a little
            assert q.probed([(twin, probe)]).action is Action.HOLD
        if ruling.action not in (Action.LEARN, Action.ENGAGE, Action.HOLD):
            break
    assert ruling is not None and ruling.action is Action.RELEASE, ruling
    assert "learning them helped a copy" in ruling.reason


def test_a_change_a_candidate_already_learned_is_released_as_known() -> None:
    """Serving is stuck on the old concept while a candidate learned the new one from labels before
    the quarantine engaged: learning the held labels gains it nothing over its twin, but the twin
    beats serving on them — released within about a probe window, not held for ``max_hold``."""
    q, rng = LabelQuarantine(2), np.random.default_rng(8)
    for c, y in batches(rng, 5_000, 0.05):
        q.judge(c, y)
    held, ruling = 0, None
    for c, y in batches(rng, 5_000, 0.9):  # serving is wrong on 90 %
        ruling = q.judge(c, y)
        if ruling.action in (Action.ENGAGE, Action.HOLD):
            held += BATCH
            twin = rng.random(BATCH) >= 0.1  # the candidate knows the new concept
            ruling = q.probed([(twin, twin.copy())], served=c)
        if ruling.action is Action.RELEASE:
            break
    assert ruling is not None and ruling.action is Action.RELEASE and ruling.reason.startswith("known"), ruling
    assert held <= q.probe_window + 2 * BATCH, held
    assert not q.engaged
