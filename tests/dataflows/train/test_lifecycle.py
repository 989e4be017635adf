"""The lifecycle's actions (`dataflows.train.lifecycle`) on a live group: a better candidate
promoted, a worse one refused and judged again after its wait, forks forked again from each new
champion, a regressing champion rolled back, verdicts published when they change. Real learners, a
SQLite registry, the board's promoter, inline lanes unless said."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataflows.config import CandidateSpec
from dataflows.train.trials import CHAMPION_SLOT, STANDBY_SLOT
from learners import LearnerSpec
from tests.dataflows.helpers import (
    GROUP,
    Group,
    Stream,
    concept_a,
    concept_b,
    config,
    decisions,
    make_group,
    trained_learner,
    verdicts,
)
from tests.dataflows.train.support import number, run_until

PROBE = np.array([[2.0, 0.5], [-2.0, 0.5], [0.1, -1.0], [-0.3, 3.0]])
ALT = CandidateSpec("alt", LearnerSpec("river-logreg", {"lr": 0.1}))


def test_a_clearly_better_candidate_is_promoted_and_learns_on_as_a_new_version(tmp_path: Path) -> None:
    """A configured alternative that learns, against an untrained champion: promoted once its shadow
    trial passes. The board and the registry name it champion; the untrained champion, never good,
    is retired rather than kept for a rollback; the candidate learns on as a new version."""
    group = make_group(config(candidates=(ALT,)), tmp_path)
    out, promote = run_until(group, Stream(1), "promote")

    assert (promote.group, promote.version, promote.previous) == (GROUP, "default/2", "default/1")
    assert promote.reason.startswith("alt default/2 passed its shadow trial against default/1")
    assert number(promote.evidence["lower"]) > 0
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
    out, refuse = run_until(group, stream, "refuse")

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
    _, again = run_until(group, stream, "refuse", batches=10)
    assert again.version == "default/3"


def test_a_refused_fork_is_forked_again_from_the_champion(tmp_path: Path) -> None:
    """A fork that learns backwards (a negative learning rate) does worse than the champion it was
    forked from: refused, and replaced by a new clone of the champion (new version, parent the
    champion), which starts from what the champion knows, not from what the refused fork learned."""
    group = make_group(config(learner=LearnerSpec("river-logreg", {"lr": -0.5})), tmp_path)
    _, refuse = run_until(group, Stream(1), "refuse")
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
    _, promote = run_until(group, Stream(1), "promote")
    assert (promote.version, promote.reason[:4]) == ("default/3", "alt ")
    fork = group.logic.lanes["fork"]
    info = group.deps.registry.version(fork.version)
    assert info.parent == "default/3", f"the fork goes on as {info.id}, a fork of {info.parent}"
    champion = group.table.champion.learner
    np.testing.assert_array_equal(fork.learner.predict_proba(PROBE), champion.predict_proba(PROBE))


def _two_promotions(group: Group, stream: Stream) -> list[object]:
    """Concept A until the fork is promoted over the untrained champion (default/2), then concept B
    until the fork goes on to beat it (default/3): default/2, trained, is kept on standby."""
    out, first = run_until(group, stream, "promote")
    assert first.version == "default/2"
    stream.concept = concept_b
    more, second = run_until(group, stream, "promote")
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

    out, retire = run_until(group, stream, "retire", batches=12)  # probation: 400 examples, concept B
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
    out, rollback = run_until(group, stream, "rollback", batches=5)

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


def test_a_refused_alternative_of_another_framework_can_still_be_promoted_later(tmp_path: Path) -> None:
    """A PyTorch alternative against a trained River champion: refused at first (it starts from
    random weights), it learns on as a new version, and when the concept flips it wins. The new
    version is registered as a PyTorch model, so its checkpoint can be saved when it is promoted."""
    torch_alt = CandidateSpec(
        "alt", LearnerSpec("torch-mlp", {"hidden": [8], "lr": 0.03, "steps_per_minibatch": 2, "device": "cpu"})
    )
    group = make_group(config(candidates=(torch_alt,), retry_after=0), tmp_path, champion=trained_learner())
    stream = Stream(1)
    _, refuse = run_until(group, stream, "refuse", batches=5)
    continued = group.deps.registry.version(group.logic.lanes["alt"].version)
    assert continued.parent == refuse.version
    assert continued.learner_class == "learners.torch_learner:TorchMLP"
    assert continued.framework == "torch"
    stream.concept = concept_b
    _, promote = run_until(group, stream, "promote", batches=20)
    assert promote.version == continued.id
    assert type(group.table.champion.learner).__name__ == "TorchMLP"


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
    _, promote = run_until(group, Stream(5), "promote", batches=6)
    assert (promote.version, promote.previous) == ("default/2", "default/1")
    assert "passed its refresh trial" in promote.reason and "not worse than the champion" in promote.reason
    assert number(promote.evidence["n"]) >= 200
    assert group.deps.board.current(GROUP).champion.version == "default/2"
    _, again = run_until(group, Stream(6), "promote", batches=6)
    assert again.previous == "default/2"

    shadow = make_group(config(refresh_samples=200), tmp_path / "shadow", champion=trained_learner())
    assert not [d for d in decisions(shadow.run(Stream(5), 8)) if d.action == "promote"]


def test_a_refresh_fork_that_is_clearly_worse_is_refused(tmp_path: Path) -> None:
    """A fork that learns something else (labels inverted) falls behind the champion it continues."""
    refresh = (CandidateSpec("fork", gate="refresh"),)
    group = make_group(config(candidates=refresh, refresh_samples=200), tmp_path, champion=trained_learner())
    fork = group.logic.lanes["fork"]
    fork.replace(fork.version, trained_learner(concept=lambda x: 1 - concept_a(x)), learns=True)
    _, refuse = run_until(group, Stream(5), "refuse", batches=6)
    assert "significantly worse" in refuse.reason
    assert group.deps.board.current(GROUP).champion.version == "default/1"
