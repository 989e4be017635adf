"""A resume brought in line with the registry (`dataflows.train.reconcile`): a snapshot older than a
promotion goes on from the registry's champion in every slot, decisions recorded after the snapshot
are emitted again, and a start without recovery state retires the last run's candidates."""

from __future__ import annotations

import pickle
from pathlib import Path

from dataflows.train import TrainLogic, new_group_state
from dataflows.train.trials import STANDBY_SLOT
from tests.dataflows.helpers import (
    GROUP,
    Stream,
    config,
    context,
    decisions,
    make_group,
    trained_learner,
)


def test_a_restart_from_a_snapshot_older_than_a_promotion_goes_on_from_the_registrys_champion(
    tmp_path: Path,
) -> None:
    """The daemon crashed after a promotion and before the next snapshot. On restart the registry's
    champion serves; the candidate that was promoted must not go on learning under the champion's
    version (its lineage would grow, and its next passing trial would promote the champion again)."""
    group = make_group(config(), tmp_path)
    stream = Stream(1)
    group.run(stream, 2)
    snapshot = pickle.dumps(group.logic.take_snapshot())
    for _ in range(20):
        out = group.run(stream, 1)
        if decisions(out):
            break
    assert "promote" in [d.action for d in decisions(out)]
    champion = group.table.champion.version
    recorded = {(d.action, d.version, d.ts_ms) for d in group.deps.registry.decisions(GROUP)}
    group.logic.close()

    group.logic = TrainLogic(pickle.loads(snapshot), context(group.config, group.deps))
    versions = {name: lane.version for name, lane in group.logic.lanes.items()}
    assert versions["champion"] == champion
    assert versions["fork"] != champion
    # The snapshot's fork was the version promoted since: forked again, it is not retired with it.
    assert group.deps.registry.version(champion).status == "champion"
    in_registry = group.deps.registry.champion(GROUP)
    assert in_registry is not None and in_registry.id == champion
    samples = group.deps.registry.version(champion).samples
    later = group.run(stream, 20)  # raises if the champion is promoted over itself
    assert group.deps.registry.version(champion).samples == samples
    new = [d for d in decisions(later) if (d.action, d.version, d.ts_ms) not in recorded]  # not emitted again
    assert all(d.version != champion or d.action == "retire" for d in new)
    assert STANDBY_SLOT not in group.logic.lanes or group.logic.lanes[STANDBY_SLOT].version != champion


def test_a_resume_from_before_a_promotion_matches_the_registry_in_every_slot(tmp_path: Path) -> None:
    """The daemon crashed after a promotion, before its next snapshot: on resume the fork starts
    again from the registry's champion, the registry's standby is on probation again, and the
    versions made after the snapshot that no lane holds are retired (with a decision)."""
    from tests.dataflows.helpers import concept_b

    group = make_group(config(), tmp_path, champion=trained_learner())
    stream = Stream(31, concept_b)
    group.run(stream, 1)
    snapshot = pickle.dumps(group.logic.take_snapshot())
    out: list[object] = []
    for _ in range(30):
        out += group.run(stream, 1)
        if any(d.action == "promote" for d in decisions(out)):
            break
    (promote,) = [d for d in decisions(out) if d.action == "promote"]
    registry = group.deps.registry
    assert registry.version(promote.previous or "").status == "standby"
    group.logic.close()

    resumed = TrainLogic(pickle.loads(snapshot), context(group.config, group.deps))
    lanes = resumed.lanes
    assert lanes["champion"].version == promote.version
    fork = registry.version(lanes["fork"].version)
    assert (fork.parent, fork.status) == (promote.version, "candidate")
    assert lanes[STANDBY_SLOT].version == promote.previous
    trial = resumed.state.slots[STANDBY_SLOT].trial
    assert trial is not None and trial.kind == "probation"
    held = {lane.version for lane in lanes.values()}
    assert [v.id for v in registry.versions(GROUP) if v.status == "candidate"] == [fork.id]
    assert all(v.id in held for v in registry.versions(GROUP) if v.status in ("champion", "standby", "candidate"))
    outbox = [(d.action, d.version) for d in resumed.state.outbox]
    assert any(action == "retire" for action, _ in outbox)  # the fork left behind, said so
    resumed.close()


def test_decisions_recorded_after_the_snapshot_are_emitted_again_on_resume(tmp_path: Path) -> None:
    """The daemon may crash after a decision reached the registry and before it reached the
    model-events topic: a resume emits every decision recorded since its snapshot (at least once)."""
    group = make_group(config(), tmp_path)
    stream = Stream(1)
    group.run(stream, 2)
    snapshot = pickle.dumps(group.logic.take_snapshot())
    before = len(group.deps.registry.decisions(GROUP))
    assert group.deps.registry.decision_count(GROUP) == before
    for _ in range(20):
        if decisions(group.run(stream, 1)):
            break
    made = group.deps.registry.decisions(GROUP, skip=before)
    assert "promote" in [d.action for d in made]
    group.logic.close()

    group.logic = TrainLogic(pickle.loads(snapshot), context(group.config, group.deps))
    again = decisions(group.run(stream, 1))
    assert [(d.action, d.version, d.ts_ms) for d in again[: len(made)]] == [
        (d.action, d.version, d.ts_ms) for d in made
    ]
    # Emitted once: a later snapshot and resume does not emit them again.
    later = pickle.dumps(group.logic.take_snapshot())
    group.logic.close()
    group.logic = TrainLogic(pickle.loads(later), context(group.config, group.deps))
    assert not [
        d
        for d in decisions(group.run(stream, 1))
        if (d.action, d.version, d.ts_ms) in {(m.action, m.version, m.ts_ms) for m in made}
    ]


def test_a_start_without_recovery_state_retires_the_last_runs_candidates_on_the_topic(tmp_path: Path) -> None:
    """Candidates of a run whose state is gone will never learn again: they are retired, and the
    retirements reach the model-events topic with the first batch, as every decision does."""
    group = make_group(config(), tmp_path)
    stale = group.logic.lanes["fork"].version
    group.logic.close()
    ctx = context(group.config, group.deps)
    group.logic = TrainLogic(new_group_state(ctx), ctx)
    retired = [d for d in decisions(group.run(Stream(2), 1)) if d.action == "retire"]
    assert [(d.version, d.reason) for d in retired] == [
        (stale, "the daemon started without this version's recovery state")
    ]
    assert group.deps.registry.version(stale).status == "retired"
