"""The gate and the promoter's actions: evidence paired per job, verdicts published when they change,
and a better candidate promoted, a worse one refused, a regressing champion rolled back, a poisoned
one stopped by the golden set. Real learners, a SQLite registry, the board's promoter, inline lanes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataflows.config import CandidateSpec, GoldenSet
from dataflows.lanes import LaneResult
from dataflows.records import DecisionRecord
from dataflows.serve import CANARY, CHAMPION
from dataflows.train import TrainOutput
from dataflows.train.trials import (
    CHAMPION_SLOT,
    STANDBY_SLOT,
    PairingBuffer,
    Trial,
    canary_part,
    canary_share,
    next_actions,
)
from evaluators import CanaryEvaluator, Paired, Phase, ProbationEvaluator, ShadowEvaluator, Verdict
from learners import LearnerSpec
from tests.dataflows.helpers import (
    GROUP,
    Group,
    Stream,
    concept_a,
    concept_b,
    concept_poisoned,
    config,
    decisions,
    make_group,
    trained_learner,
    verdicts,
)

PROBE = np.array([[2.0, 0.5], [-2.0, 0.5], [0.1, -1.0], [-0.3, 3.0]])
ALT = CandidateSpec("alt", LearnerSpec("river-logreg", {"lr": 0.1}))


# -- pairing and actions, pure ------------------------------------------------------------------


def _result(lane: str, version: str, seq: int, correct: list[float], routes: list[int] | None = None) -> LaneResult:
    c = np.array(correct)
    r = np.array(routes if routes is not None else [CHAMPION] * len(correct), dtype=np.int8)
    return LaneResult(lane, version, seq, c, c.copy(), r)


def test_pairing_pairs_each_candidate_with_the_champion_on_the_same_job() -> None:
    buffer = PairingBuffer()
    buffer.add(_result("fork", "v2", 1, [1, 1, 0]))
    assert buffer.pairs({"champion": "v1", "fork": "v2"}, oldest_kept=0) == []  # its counterpart is not in yet
    buffer.add(_result("champion", "v1", 1, [0, 1, 0]))
    buffer.add(_result("standby", "v0", 1, [1, 0, 0]))
    pairs = buffer.pairs({"champion": "v1", "fork": "v2", "standby": "v0"}, oldest_kept=0)
    got = {slot: (p.candidate.tolist(), p.champion.tolist()) for slot, p, _ in pairs}
    assert got == {
        "fork": ([1, 1, 0], [0, 1, 0]),
        "standby": ([0, 1, 0], [1, 0, 0]),  # the champion is the one on trial against its predecessor
    }
    assert buffer.pairs({"champion": "v1", "fork": "v2", "standby": "v0"}, oldest_kept=0) == []  # used once


def test_pairing_drops_results_of_versions_that_no_longer_hold_their_slot() -> None:
    buffer = PairingBuffer()
    buffer.add(_result("champion", "v1", 1, [1.0]))
    buffer.add(_result("fork", "v2", 1, [1.0]))
    buffer.add(_result("champion", "v1", 2, [1.0]))
    buffer.add(_result("fork", "v3", 2, [0.0]))
    pairs = buffer.pairs({"champion": "v1", "fork": "v3"}, oldest_kept=0)
    assert [(slot, p.candidate.tolist()) for slot, p, _ in pairs] == [("fork", [0.0])]
    # against a champion that no longer serves, nothing is evidence
    buffer.add(_result("champion", "v1", 3, [1.0]))
    buffer.add(_result("fork", "v3", 3, [1.0]))
    assert buffer.pairs({"champion": "v9", "fork": "v3"}, oldest_kept=0) == []
    assert 3 not in buffer.pending


def test_pairing_forgets_jobs_older_than_it_keeps() -> None:
    buffer = PairingBuffer()
    buffer.add(_result("fork", "v2", 1, [1.0]))
    buffer.add(_result("fork", "v2", 5, [1.0]))
    buffer.pairs({"champion": "v1", "fork": "v2"}, oldest_kept=3)
    assert list(buffer.pending) == [5]


def test_a_skipped_result_is_not_evidence() -> None:
    buffer = PairingBuffer()
    buffer.add(_result("champion", "v1", 1, [1.0, 1.0]))
    buffer.add(LaneResult("fork", "v2", 1, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int8), skipped=True))
    assert buffer.pairs({"champion": "v1", "fork": "v2"}, oldest_kept=0) == []


def test_canary_evidence_is_the_examples_the_canary_served() -> None:
    paired = Paired(candidate=np.array([1.0, 0.0, 1.0, 1.0]), champion=np.array([0.0, 0.0, 1.0, 0.0]))
    part = canary_part(paired, np.array([CANARY, CHAMPION, CHAMPION, CANARY], dtype=np.int8))
    assert (part.candidate.tolist(), part.champion.tolist()) == ([1.0, 1.0], [0.0, 0.0])


def _trial(phase: Phase | None, kind: str = "shadow") -> Trial:
    trial = Trial(ShadowEvaluator(), kind)
    trial.verdict = None if phase is None else Verdict(phase, f"{phase.value} for the test")
    return trial


def test_a_failing_champion_on_probation_is_rolled_back_before_anything_else() -> None:
    actions = next_actions({"fork": _trial(Phase.PASSED), STANDBY_SLOT: _trial(Phase.FAILED, "probation")})
    assert [(a.kind, a.slot) for a in actions] == [("rollback", STANDBY_SLOT)]


def test_only_the_first_candidate_that_passed_is_promoted_and_the_others_are_judged() -> None:
    trials = {
        STANDBY_SLOT: _trial(Phase.PASSED, "probation"),
        "a": _trial(Phase.PASSED),
        "b": _trial(Phase.PASSED),
        "c": _trial(Phase.FAILED),
        "d": _trial(Phase.ERROR),
        "e": _trial(Phase.INCONCLUSIVE),
        "f": _trial(Phase.RUNNING),
        "g": _trial(None),
    }
    actions = next_actions(trials)
    assert [(a.kind, a.slot) for a in actions] == [
        ("retire_standby", STANDBY_SLOT),
        ("refuse", "c"),
        ("refuse", "d"),
        ("new_trial", "e"),
        ("promote", "a"),  # last: it starts every other trial over
    ]


def test_canary_share_follows_the_trial_and_is_zero_once_it_concluded() -> None:
    trial = Trial(CanaryEvaluator(steps=(0.1, 0.5), min_samples_per_step=10), "canary")
    assert canary_share(trial) == 0.1
    trial.evaluator.update(Paired(candidate=np.ones(10), champion=np.ones(10)))
    assert canary_share(trial) == 0.5
    trial.phase = Phase.FAILED
    assert canary_share(trial) == 0.0
    assert canary_share(Trial(ProbationEvaluator(), "probation")) == 0.0


# -- the whole gate, on a live group ------------------------------------------------------------------


def _number(value: object) -> float:
    assert isinstance(value, int | float), value
    return float(value)


def _run_until(group: Group, stream: Stream, action: str, batches: int = 40) -> tuple[list[object], DecisionRecord]:
    """Run batch after batch until the promoter takes ``action``; fail if it does not within ``batches``."""
    out: list[object] = []
    for _ in range(batches):
        got = group.run(stream, 1)
        out.extend(got)
        taken = [d for d in decisions(got) if d.action == action]
        if taken:
            return out, taken[0]
    msg = f"no {action} within {batches} batches; decisions: {[(d.action, d.version) for d in decisions(out)]}"
    raise AssertionError(msg)


def test_a_clearly_better_candidate_is_promoted_and_learns_on_as_a_new_version(tmp_path: Path) -> None:
    """A configured alternative that learns, against an untrained champion: promoted once its shadow
    trial passes. The board and the registry name it champion; the untrained champion, never good,
    is retired rather than kept for a rollback; the candidate learns on as a new version."""
    group = make_group(config(candidates=(ALT,)), tmp_path)
    out, promote = _run_until(group, Stream(1), "promote")

    assert (promote.group, promote.version, promote.previous) == (GROUP, "default/2", "default/1")
    assert promote.reason.startswith("alt default/2 passed its shadow trial against default/1")
    assert _number(promote.evidence["lower"]) > 0
    (passed,) = [v for v in verdicts(out) if v.phase == "passed"]
    assert (passed.model, passed.version, passed.evaluator) == ("alt", "default/2", "shadow")
    (retire,) = [d for d in decisions(out) if d.action == "retire"]
    assert retire.version == "default/1"

    registry = group.deps.registry
    assert group.table.champion.version == "default/2"
    assert registry.champion(GROUP).id == "default/2"  # type: ignore[union-attr]
    assert registry.version("default/1").status == "retired"
    assert registry.version("default/2").checkpoint_sha256 is not None
    assert [d.action for d in registry.decisions(GROUP)][-2:] == ["promote", "retire"]
    lanes = group.logic.lanes
    assert (lanes[CHAMPION_SLOT].version, lanes["alt"].version) == ("default/2", "default/3")
    assert STANDBY_SLOT not in lanes
    continued = registry.version("default/3")
    assert (continued.parent, continued.status, continued.config["continues"]) == (
        "default/2",
        "candidate",
        "default/2",
    )
    # the champion that serves is the promoted model, frozen apart from the lane that goes on learning
    served = group.table.champion.learner
    assert served is lanes[CHAMPION_SLOT].learner
    assert served is not lanes["alt"].learner
    np.testing.assert_array_equal(served.predict_proba(PROBE), lanes["alt"].learner.predict_proba(PROBE))
    # the new version is credited with what it learns from now on, the promoted one keeps its own
    before = registry.version("default/2").ranges
    group.run(Stream(2), 2)
    assert registry.version("default/2").ranges == before
    assert registry.version("default/3").samples == 100


def test_a_worse_candidate_is_refused_and_waits_before_it_is_judged_again(tmp_path: Path) -> None:
    """An alternative that cannot learn (learning rate 0) against a trained champion: refused. It is
    another configuration, so it learns on as a new version; its next trial waits ``retry_after``
    labelled examples. The champion serves on."""
    no_learning = CandidateSpec("alt", LearnerSpec("river-logreg", {"lr": 0.0}))
    group = make_group(config(candidates=(no_learning,), retry_after=500), tmp_path, champion=trained_learner())
    stream = Stream(1)
    out, refuse = _run_until(group, stream, "refuse")

    assert (refuse.version, refuse.previous) == ("default/2", None)
    assert "significantly worse" in refuse.reason
    (failed,) = [v for v in verdicts(out) if v.phase == "failed"]
    assert (failed.model, failed.version) == ("alt", "default/2")
    registry = group.deps.registry
    assert registry.version("default/2").status == "retired"
    assert group.table.champion.version == "default/1"
    assert registry.champion(GROUP).id == "default/1"  # type: ignore[union-attr]
    continued = registry.version(group.logic.lanes["alt"].version)
    assert (continued.id, continued.parent, continued.config["continues"]) == ("default/3", "default/2", "default/2")

    quiet = group.run(stream, 9)  # 450 of the 500 examples it must wait
    assert decisions(quiet) == []
    assert [v for v in verdicts(quiet) if v.model == "alt"] == []
    _, again = _run_until(group, stream, "refuse", batches=10)
    assert again.version == "default/3"


def test_a_refused_fork_is_forked_again_from_the_champion(tmp_path: Path) -> None:
    """A fork that learns backwards (a negative learning rate) does worse than the champion it was
    forked from: refused, and replaced by a new clone of the champion (new version, parent the
    champion), which starts from what the champion knows, not from what the refused fork learned."""
    group = make_group(config(learner=LearnerSpec("river-logreg", {"lr": -0.5})), tmp_path)
    _, refuse = _run_until(group, Stream(1), "refuse")
    assert refuse.version == "default/2"
    fork = group.logic.lanes["fork"]
    info = group.deps.registry.version(fork.version)
    assert (info.id, info.parent, info.config["fork_of"], info.status) == (
        "default/3",
        "default/1",
        "default/1",
        "candidate",
    )
    champion = group.table.champion.learner
    assert fork.learner is not champion
    np.testing.assert_array_equal(fork.learner.predict_proba(PROBE), champion.predict_proba(PROBE))


def test_a_fork_is_forked_again_from_each_new_champion(tmp_path: Path) -> None:
    """`CandidateSpec`: a fork is "a clone of the champion with its state, forked again from each new
    champion". When another candidate is promoted, the fork must start again from the new champion
    (new version, parent the new champion), not go on as a fork of the champion that was replaced.
    (The configured learner has a learning rate of 0, so the fork cannot win first.)"""
    cfg = config(candidates=(CandidateSpec("fork"), ALT), learner=LearnerSpec("river-logreg", {"lr": 0.0}))
    group = make_group(cfg, tmp_path)
    _, promote = _run_until(group, Stream(1), "promote")
    assert (promote.version, promote.reason[:4]) == ("default/3", "alt ")
    fork = group.logic.lanes["fork"]
    info = group.deps.registry.version(fork.version)
    assert info.parent == "default/3", f"the fork goes on as {info.id}, a fork of {info.parent}"
    champion = group.table.champion.learner
    np.testing.assert_array_equal(fork.learner.predict_proba(PROBE), champion.predict_proba(PROBE))


def _two_promotions(group: Group, stream: Stream) -> list[object]:
    """Concept A until the fork is promoted over the untrained champion (default/2), then concept B
    until the fork goes on to beat it (default/3): default/2, trained, is kept on standby."""
    out, first = _run_until(group, stream, "promote")
    assert first.version == "default/2"
    stream.concept = concept_b
    more, second = _run_until(group, stream, "promote")
    assert (second.version, second.previous) == ("default/3", "default/2")
    return out + more


def test_a_trained_champion_that_is_replaced_goes_on_standby_and_is_retired_when_its_successor_holds_up(
    tmp_path: Path,
) -> None:
    group = make_group(config(), tmp_path)
    stream = Stream(1)
    _two_promotions(group, stream)
    registry = group.deps.registry
    assert registry.version("default/2").status == "standby"
    assert group.logic.lanes[STANDBY_SLOT].version == "default/2"
    assert group.table.champion.version == "default/3"

    out, retire = _run_until(group, stream, "retire", batches=12)  # probation: 400 examples, concept B
    assert retire.version == "default/2"
    assert retire.reason.startswith("default/3 passed its probation")
    (passed,) = [v for v in verdicts(out) if v.evaluator == "probation" and v.phase == "passed"]
    assert (passed.model, passed.version, passed.evidence["standby"]) == ("champion", "default/3", "default/2")
    assert registry.version("default/2").status == "retired"
    assert STANDBY_SLOT not in group.logic.lanes
    assert group.table.champion.version == "default/3"


def test_a_new_champion_worse_than_its_predecessor_on_probation_is_rolled_back(tmp_path: Path) -> None:
    """The concept flips back right after the second promotion: the standby, trained on it, wins
    the probation; the promoter puts it back on the board and retires the version that failed."""
    group = make_group(config(), tmp_path)
    stream = Stream(1)
    _two_promotions(group, stream)
    stream.concept = concept_a
    out, rollback = _run_until(group, stream, "rollback", batches=5)

    assert (rollback.version, rollback.previous) == ("default/2", "default/3")
    assert rollback.reason.startswith("default/3 fell behind its predecessor default/2 on probation")
    (failed,) = [v for v in verdicts(out) if v.evaluator == "probation"]
    assert (failed.model, failed.version, failed.phase) == ("champion", "default/3", "failed")
    assert failed.evidence["standby"] == "default/2"
    registry = group.deps.registry
    assert registry.champion(GROUP).id == "default/2"  # type: ignore[union-attr]
    assert registry.version("default/3").status == "retired"
    assert group.table.champion.version == "default/2"
    assert group.logic.lanes[CHAMPION_SLOT].version == "default/2"
    assert STANDBY_SLOT not in group.logic.lanes
    # the model back on the board is the one that was promoted, with what it knew then
    restored = group.table.champion.learner
    assert restored.predict_proba(np.array([[2.0, 0.0]])).argmax() == 1  # concept A: positive
    served, _ = group.step(Stream(50).batch(20))
    assert {p.version for p in served.predictions} == {"default/2"}


def test_verdicts_are_published_only_when_their_phase_changes(tmp_path: Path) -> None:
    """Over promotions, a probation and a rollback, one verdict record per phase a trial enters, in
    the registry too; never one per batch."""
    group = make_group(config(), tmp_path)
    stream = Stream(1)
    out = _two_promotions(group, stream)
    stream.concept = concept_a
    out += group.run(stream, 20)
    records = verdicts(out)
    assert 3 <= len(records) < 20
    seen: dict[tuple[str, str, str], str] = {}
    for v in records:
        key = (v.model, v.version, v.evaluator)
        assert seen.get(key) != v.phase, f"{key} published {v.phase} twice in a row"
        seen[key] = v.phase
    in_registry = [(r["evaluator"], r["phase"]) for r in group.deps.registry.verdicts("default/2")]
    assert in_registry == [(v.evaluator, v.phase) for v in records if v.version == "default/2"]


def test_a_golden_set_blocks_a_candidate_that_wins_on_a_poisoned_stream(tmp_path: Path) -> None:
    """The stream's labels are flipped in a quarter of the plane, consistently: the fork learns the
    poison and beats the champion on the live (poisoned) labels, but regresses on the golden set,
    so it is refused, and the reason says so."""
    x, y = Stream(123).arrays(500)
    group = make_group(config(golden=GoldenSet(x, y)), tmp_path, champion=trained_learner())
    out, refuse = _run_until(group, Stream(1, concept_poisoned), "refuse")

    assert refuse.version == "default/2"
    assert "passed its shadow trial but not the golden set" in refuse.reason
    assert "on the 500-example golden set" in refuse.reason
    assert refuse.evidence["golden_phase"] == "failed"
    assert _number(refuse.evidence["golden_candidate_mean"]) < _number(refuse.evidence["golden_champion_mean"]) - 0.02
    phases = [(v.evaluator, v.phase) for v in verdicts(out) if v.version == "default/2"]
    assert ("shadow", "passed") in phases and ("golden", "failed") in phases
    # The refusal, and the retirement (now on the topic too) of the successor frozen with it,
    # which never learned anything of its own: the fork starts again from the champion.
    assert [(d.action, d.version) for d in decisions(out)] == [("refuse", "default/2"), ("retire", "default/3")]
    assert decisions(out)[1].reason == "default/2 was refused"
    assert group.table.champion.version == "default/1"
    assert group.deps.registry.version("default/2").status == "retired"
    assert group.deps.registry.version("default/3").status == "retired"


def test_a_golden_set_passes_a_candidate_that_is_better_on_it(tmp_path: Path) -> None:
    x, y = Stream(123).arrays(500)
    group = make_group(config(golden=GoldenSet(x, y)), tmp_path)
    out, promote = _run_until(group, Stream(1), "promote")
    assert promote.evidence["golden_phase"] == "passed"
    assert promote.evidence["golden_n"] == 500
    ((golden),) = [v for v in verdicts(out) if v.evaluator == "golden"]
    assert (golden.version, golden.phase) == ("default/2", "passed")


def test_a_golden_set_too_small_to_judge_does_not_repeat_its_verdict_every_batch(tmp_path: Path) -> None:
    """A golden set below the evaluator's minimum checks nothing: the candidate that passed its trial
    waits and is not promoted; and, like every verdict, a golden one is never repeated batch after
    batch while it waits."""
    x, y = Stream(123).arrays(10)
    group = make_group(config(golden=GoldenSet(x, y)), tmp_path)
    out = group.run(Stream(1), 10)
    assert ("fork", "default/2", "shadow", "passed") in [
        (v.model, v.version, v.evaluator, v.phase) for v in verdicts(out)
    ]
    assert [d.action for d in decisions(out)] == []
    assert group.table.champion.version == "default/1"
    golden = [v for v in verdicts(out) if v.evaluator == "golden"]
    assert len(golden) <= 1


def test_a_refused_alternative_of_another_framework_can_still_be_promoted_later(tmp_path: Path) -> None:
    """A PyTorch alternative against a trained River champion: refused at first (it starts from
    random weights), it learns on as a new version, and when the concept flips it wins. The new
    version is registered as a PyTorch model, so its checkpoint can be saved when it is promoted."""
    torch_alt = CandidateSpec(
        "alt", LearnerSpec("torch-mlp", {"hidden": [8], "lr": 0.03, "steps_per_minibatch": 2, "device": "cpu"})
    )
    group = make_group(config(candidates=(torch_alt,), retry_after=0), tmp_path, champion=trained_learner())
    stream = Stream(1)
    _, refuse = _run_until(group, stream, "refuse", batches=5)
    continued = group.deps.registry.version(group.logic.lanes["alt"].version)
    assert continued.parent == refuse.version
    assert continued.learner_class == "learners.torch_learner:TorchMLP"
    assert continued.framework == "torch"
    stream.concept = concept_b
    _, promote = _run_until(group, stream, "promote", batches=20)
    assert promote.version == continued.id
    assert type(group.table.champion.learner).__name__ == "TorchMLP"


def _canary_group(tmp_path: Path) -> Group:
    """A fork on a canary trial of two steps, 10% then 50% of keys, 100 canary examples each."""
    cfg = config(candidates=(CandidateSpec("fork", gate="canary"),), canary_steps=(0.1, 0.5), canary_min_samples=100)
    return make_group(cfg, tmp_path)


def test_a_canary_serves_its_share_and_is_promoted_through_its_steps(tmp_path: Path) -> None:
    """A fork on a canary trial serves a sticky share of keys, raised step by step while it holds
    up. What serves is a snapshot of the fork, a version of its own (parent: the fork's version),
    re-taken at each step, the previous one retired. Promoted at the last step; then the next
    version goes on canary at the first step."""
    group = _canary_group(tmp_path)
    registry = group.deps.registry
    stream = Stream(1)
    group.step(stream.batch(100))
    first = group.table.canary
    assert first is not None and group.table.canary_share == 0.1
    info = registry.version(first.version)
    assert (info.parent, info.config["canary_snapshot_of"], info.checkpoint_sha256 is not None) == (
        "default/2", "default/2", True,
    )  # fmt: skip
    snapshots: list[tuple[str, float]] = []
    counts: list[int] = []
    out: list[TrainOutput] = []
    for _ in range(30):
        served, out = group.step(stream.batch(100))
        group.clock.t += 1
        canary = [p for p in served.predictions if p.route == "canary"]
        counts.append(len(canary))
        for p in canary:
            assert registry.version(p.version).config["canary_snapshot_of"] == "default/2"
        if any(d.action == "promote" for d in decisions(out)):
            break
        table = group.table
        if table.canary is not None and (not snapshots or snapshots[-1][0] != table.canary.version):
            snapshots.append((table.canary.version, table.canary_share))
    else:
        raise AssertionError(f"the canary was never promoted; snapshots {snapshots}")
    assert [share for _, share in snapshots] == [0.1, 0.5]
    assert snapshots[0][0] == first.version
    assert 3 <= counts[0] <= 20  # about 10 of 100 keys
    assert registry.version(first.version).status == "retired"  # replaced at the second step
    (promote,) = [d for d in decisions(out) if d.action == "promote"]
    assert (promote.version, promote.previous) == ("default/2", "default/1")
    assert promote.reason.startswith("fork default/2 passed its canary trial")
    table = group.table
    assert table.champion.version == "default/2"
    assert table.canary is not None and table.canary_share == 0.1
    assert registry.version(table.canary.version).config["canary_snapshot_of"] == group.logic.lanes["fork"].version
    assert registry.version(snapshots[-1][0]).status == "retired"


def test_every_prediction_was_made_by_the_checkpoint_of_the_version_it_names(tmp_path: Path) -> None:
    """A prediction names the version that made it, and the registry keeps that version's bytes:
    loading the checkpoint of every version that served, champion or canary, reproduces exactly
    what was served under its name, across a canary's steps and its promotion."""
    group = _canary_group(tmp_path)
    stream = Stream(1)
    served_by: dict[str, list[tuple[list[float], list[float]]]] = {}
    promoted_at: int | None = None
    for k in range(30):
        served, out = group.step(stream.batch(100))
        for p, e in zip(served.predictions, served.batch.events, strict=True):
            served_by.setdefault(p.version, []).append((e.x, p.proba))
        if promoted_at is None and any(d.action == "promote" for d in decisions(out)):
            promoted_at = k
        if promoted_at is not None and k >= promoted_at + 2:
            break
    assert promoted_at is not None
    assert len(served_by) >= 4  # the first champion, two canary snapshots, the new champion, its canary
    registry = group.deps.registry
    for version, rows in served_by.items():
        model = registry.load_checkpoint(version)
        x = np.array([r[0] for r in rows])
        np.testing.assert_array_equal(
            model.predict_proba(x), np.array([r[1] for r in rows]), err_msg=f"{version}: served by another model"
        )


def test_a_promotion_with_threaded_lanes(tmp_path: Path) -> None:
    """The same promotion with every model on its own thread: the test waits for the lanes (bounded)
    between batches, and the outcome is that of the inline run."""
    group = make_group(config(candidates=(ALT,), threaded=True), tmp_path)
    stream = Stream(1)
    out: list[object] = []
    for _ in range(30):
        got = group.run(stream, 1)
        for lane in group.logic.lanes.values():
            assert lane.wait_idle(timeout_s=10), f"lane {lane.name} still busy after 10 s"
        more, _ = group.logic.on_notify()
        out += got + list(more)
        if any(d.action == "promote" for d in decisions(out)):
            break
    (promote,) = [d for d in decisions(out) if d.action == "promote"]
    assert (promote.version, promote.previous) == ("default/2", "default/1")
    assert group.table.champion.version == "default/2"
    assert group.logic.lanes["alt"].version == "default/3"
    assert group.deps.registry.version("default/3").parent == "default/2"
    group.logic.on_eof()


def test_a_refresh_fork_replaces_a_trained_champion_as_soon_as_it_is_not_worse(tmp_path: Path) -> None:
    """On a stationary stream a trained champion and its fork score alike: a shadow fork is never
    significantly better, so serving never gets what it learns; a refresh fork replaces the
    champion after `refresh_samples` paired examples, and again from each new champion."""
    refresh = (CandidateSpec("fork", gate="refresh"),)
    group = make_group(config(candidates=refresh, refresh_samples=200), tmp_path, champion=trained_learner())
    _, promote = _run_until(group, Stream(5), "promote", batches=6)
    assert (promote.version, promote.previous) == ("default/2", "default/1")
    assert "passed its refresh trial" in promote.reason and "not worse than the champion" in promote.reason
    assert _number(promote.evidence["n"]) >= 200
    assert group.deps.board.current(GROUP).champion.version == "default/2"
    _, again = _run_until(group, Stream(6), "promote", batches=6)
    assert again.previous == "default/2"

    shadow = make_group(config(refresh_samples=200), tmp_path / "shadow", champion=trained_learner())
    assert not [d for d in decisions(shadow.run(Stream(5), 8)) if d.action == "promote"]


def test_a_refresh_fork_that_is_clearly_worse_is_refused(tmp_path: Path) -> None:
    """A fork that learns something else (labels inverted) falls behind the champion it continues."""
    refresh = (CandidateSpec("fork", gate="refresh"),)
    group = make_group(config(candidates=refresh, refresh_samples=200), tmp_path, champion=trained_learner())
    fork = group.logic.lanes["fork"]
    fork.replace(fork.version, trained_learner(concept=lambda x: 1 - concept_a(x)), learns=True)
    _, refuse = _run_until(group, Stream(5), "refuse", batches=6)
    assert "significantly worse" in refuse.reason
    assert group.deps.board.current(GROUP).champion.version == "default/1"


def test_refresh_is_for_forks_only() -> None:
    with pytest.raises(ValueError, match="for forks"):
        CandidateSpec("alt", LearnerSpec("river-logreg"), gate="refresh")
