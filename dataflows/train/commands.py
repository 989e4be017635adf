"""Operators' commands, applied by the group's one writer, in order with the data.

A command (`dataflows.control`) reaches the train step on the same input as the served batches;
`apply` carries it out and returns what it caused — decisions, and one `CommandRecord` with its
outcome, also kept in the registry's command log:

- a message at or below ``GroupState.control_offset`` was handled before a restart: nothing (the
  registry says what became of it, and `restore` brought its effect back);
- an id the log holds already is a ``duplicate``; one issued longer ago than ``command_ttl_s`` is
  ``expired``;
- otherwise it is ``applied``, or ``rejected`` with why (an unknown model or version, a conflict).
  Decisions it caused carry its id in their evidence (``command``).

Exactly once across a crash: the log is written as each command is handled; a snapshot keeps the
offset it had reached. `restore`, as the step starts, re-applies what the log holds beyond that
offset — the held state (paused, frozen, ceiling) and the candidates added or retired; a promotion
or a rollback is the registry's already, and `dataflows.train.reconcile` put it back on the board.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec

from dataflows.control import ARGS, Command, CommandKind, Outcome
from dataflows.records import CommandRecord, DecisionRecord
from dataflows.train import canary, candidates, lifecycle, quarantine, replays, restart
from dataflows.train.candidates import Rejected
from dataflows.train.golden import check_golden, golden_set_of
from dataflows.train.state import GroupRuntime, TrainOutput, decision_record
from dataflows.train.trials import CHAMPION_SLOT, RESTART_SLOT, STANDBY_SLOT
from evaluators import Phase, Verdict

__all__ = ["apply", "restore"]

log = logging.getLogger("headwater")


def apply(rt: GroupRuntime, command: Command, now_ms: int) -> list[TrainOutput]:
    """Handle one command read from the control topic (see the module's doc)."""
    state, ctx = rt.state, rt.ctx
    src = command.source
    if src is not None:
        if src.offset <= state.control_offset:
            return []  # handled before the restart this run resumed from
        state.control_offset = src.offset
    out: list[TrainOutput] = []
    if ctx.registry.command(command.id) is not None:
        outcome, detail = Outcome.DUPLICATE, f"command {command.id} was read before; applied at most once"
    elif now_ms - command.ts_ms > ctx.config.command_ttl_s * 1000:
        age_s = (now_ms - command.ts_ms) / 1000
        outcome, detail = Outcome.EXPIRED, f"issued {age_s:.0f} s ago, more than {ctx.config.command_ttl_s:g} s"
    else:
        rt.flush_lineage()  # a decision is recorded with the lineage it was taken on
        try:
            detail, out = _HANDLERS[command.kind](rt, command, now_ms)
            outcome = Outcome.APPLIED
        except Rejected as exc:
            outcome, detail = Outcome.REJECTED, str(exc)
            out = exc.out
    record = CommandRecord(
        group=state.name, id=command.id, kind=command.kind.value, args=command.wire_args(), actor=command.actor,
        reason=command.reason, outcome=outcome.value, detail=detail, issued_ts_ms=command.ts_ms, ts_ms=now_ms,
        source=src,
    )  # fmt: skip
    ctx.registry.record_command(record)
    log.info("group %s: command %s %s by %s: %s (%s)", state.name, command.kind, command.id, command.actor,
             outcome, detail)  # fmt: skip
    ctx.metrics.commanded(state.name, command.kind.value, outcome.value)
    report_held(rt)
    return [*out, record]


def restore(rt: GroupRuntime) -> None:
    """Re-apply what the command log holds beyond the offset this state had reached (the state
    may be a snapshot older than the log, or new), and move that offset to the log's last."""
    state, ctx = rt.state, rt.ctx
    topic = ctx.config.topics.control
    now_ms = int(ctx.clock() * 1000)
    for record in ctx.registry.commands(state.name):
        src = record.source
        if src is None or src.topic != topic or src.offset <= state.control_offset:
            continue
        state.control_offset = src.offset
        if record.outcome != Outcome.APPLIED or record.kind not in _HELD:
            continue
        try:
            args = msgspec.convert(record.args, ARGS[CommandKind(record.kind)])
            command = Command(record.id, record.group, CommandKind(record.kind), args, record.actor, record.reason,
                              record.issued_ts_ms, src)  # fmt: skip
            _, out = _HANDLERS[command.kind](rt, command, now_ms)
        except (Rejected, msgspec.ValidationError) as exc:
            log.warning("group %s: command %s could not be applied again after the restart: %s", state.name,
                        record.id, exc)  # fmt: skip
            continue
        state.outbox.extend(r for r in out if isinstance(r, DecisionRecord))
        log.info("group %s: command %s (%s) applied again after the restart", state.name, record.id, record.kind)
    report_held(rt)


def report_held(rt: GroupRuntime) -> None:
    state = rt.state
    rt.ctx.metrics.controlled(state.name, paused=len(state.paused), frozen=state.decisions_frozen,
                              canary_ceiling=state.canary_ceiling)  # fmt: skip


# -- the commands -----------------------------------------------------------------------------------

Result = tuple[str, list[TrainOutput]]


def _candidate(rt: GroupRuntime, name: str | None, kind: str) -> str:
    """The candidate slot ``name`` (a candidate's name, or ``restart``)."""
    slots = rt.state.slots
    if name in (CHAMPION_SLOT, STANDBY_SLOT):
        msg = f"{kind}: {name!r} is not a candidate (the champion and the standby never learn)"
        raise Rejected(msg)
    if name is None or name not in slots:
        known = sorted(n for n, s in slots.items() if s.spec is not None or n == RESTART_SLOT)
        msg = f"{kind}: group {rt.state.name!r} has no candidate {name!r} (candidates: {known})"
        raise Rejected(msg)
    return name


def _candidates(rt: GroupRuntime) -> list[str]:
    return [n for n, s in rt.state.slots.items() if s.spec is not None or n == RESTART_SLOT]


def _pause(rt: GroupRuntime, command: Command, now_ms: int) -> Result:
    names = _candidates(rt) if command.args.model is None else [_candidate(rt, command.args.model, "pause")]
    rt.state.paused = rt.state.paused | frozenset(names)
    return f"learning paused for {sorted(names)}; they still score", []


def _resume(rt: GroupRuntime, command: Command, now_ms: int) -> Result:
    names = sorted(rt.state.paused) if command.args.model is None else [command.args.model]
    if command.args.model is not None and command.args.model not in rt.state.paused:
        msg = f"resume: {command.args.model!r} is not paused (paused: {sorted(rt.state.paused)})"
        raise Rejected(msg)
    rt.state.paused = rt.state.paused - frozenset(names)
    return f"learning resumed for {names}", []


def _freeze(rt: GroupRuntime, command: Command, now_ms: int) -> Result:
    rt.state.decisions_frozen = True
    return "decisions frozen: verdicts are reported, nothing is promoted, refused or rolled back", []


def _unfreeze(rt: GroupRuntime, command: Command, now_ms: int) -> Result:
    rt.state.decisions_frozen = False
    return "decisions unfrozen", []


def _ceiling(rt: GroupRuntime, command: Command, now_ms: int) -> Result:
    share = float(command.args.share)
    rt.state.canary_ceiling = share
    out = canary.publish(rt, now_ms, hold=False)
    return f"the canary serves at most {share:g} of the keys" + (" (no canary route)" if share == 0 else ""), out


def _why(command: Command) -> tuple[str, dict[str, Any]]:
    """How a decision says it was an operator's, and the evidence that names the command."""
    return f"operator {command.actor}: {command.reason}", {"command": command.id}


def _promote(rt: GroupRuntime, command: Command, now_ms: int) -> Result:
    args, champion = command.args, rt.lanes[CHAMPION_SLOT].version
    _, evidence = _why(command)
    if args.model is not None:
        name = _candidate(rt, args.model, "promote")
        version = rt.lanes[name].version
        verdict = Verdict(Phase.PASSED, command.reason, evidence)
        out = lifecycle.promote(rt, name, verdict, now_ms, golden=not args.skip_golden, by=f"operator {command.actor}")
        if rt.lanes[CHAMPION_SLOT].version != version:
            refused = next((r for r in out if isinstance(r, DecisionRecord) and r.action == "refuse"), None)
            why = refused.reason if refused is not None else "not enough trusted history for the golden set yet"
            msg = f"promote: {name} {version} was not promoted: {why} (skip_golden to promote anyway)"
            raise Rejected(msg, out)
        return f"{name} {version} serves as champion in place of {champion}", out
    version = _served_before(rt, args.version, "promote", need_promoted=False)
    learner = rt.ctx.registry.load_checkpoint(version)  # digest-checked
    if not args.skip_golden:
        golden_set = golden_set_of(rt)
        if golden_set is not None:
            checked = check_golden(rt, learner, *golden_set)
            if checked.phase is not Phase.PASSED:
                msg = f"promote: {version} does not pass the golden set: {checked.reason} (skip_golden to override)"
                raise Rejected(msg)
    why = f"{version} promoted by operator {command.actor} over {champion}: {command.reason}"
    out = lifecycle.crown(rt, version, learner, reason=why, evidence=evidence, now_ms=now_ms)
    return f"{version} serves as champion in place of {champion}", out


def _rollback(rt: GroupRuntime, command: Command, now_ms: int) -> Result:
    reason, evidence = _why(command)
    champion = rt.lanes[CHAMPION_SLOT].version
    standby = rt.lanes[STANDBY_SLOT].version if STANDBY_SLOT in rt.lanes else None
    target = command.args.version if command.args.version is not None else standby
    if target is None:
        msg = "rollback: the group has no standby; name a version that served before (args.version)"
        raise Rejected(msg)
    if target == standby:
        verdict = Verdict(Phase.FAILED, reason, evidence)
        why = f"rolled back from {champion} to {target} by {reason}"
        return f"{target} (the standby) serves again in place of {champion}", lifecycle.rollback(
            rt, verdict, now_ms, reason=why
        )
    _served_before(rt, target, "rollback", need_promoted=True)
    learner = rt.ctx.registry.load_checkpoint(target)
    out: list[TrainOutput] = []
    if standby is not None:  # an operator chose another version: the standby's turn is over
        out.extend(lifecycle.drop_standby(rt, f"{target} was rolled back to by {reason}", evidence, now_ms))
    decision = rt.ctx.promoter.rollback(
        rt.state.name, version=target, learner=learner, previous=champion,
        reason=f"rolled back from {champion} to {target} by {reason}", evidence=evidence, ts_ms=now_ms,
    )  # fmt: skip
    rt.ctx.metrics.decided(rt.state.name, "rollback")
    rt.lanes[CHAMPION_SLOT].replace(target, learner, learns=False)
    rt.state.champion_through = 0
    rt.state.change.reset()
    rt.new_trials()
    out += [decision_record(decision), *lifecycle.refork(rt, now_ms), *canary.end(rt, "the champion changed", now_ms)]
    return f"{target} serves again in place of {champion}", out


def _served_before(rt: GroupRuntime, version: str | None, kind: str, *, need_promoted: bool) -> str:
    registry, group = rt.ctx.registry, rt.state.name
    try:
        info = registry.version(str(version))
    except LookupError:
        msg = f"{kind}: no version {version!r} in the registry"
        raise Rejected(msg) from None
    if info.group != group:
        msg = f"{kind}: {version} belongs to group {info.group!r}, not {group!r}"
        raise Rejected(msg)
    if info.id == rt.lanes[CHAMPION_SLOT].version:
        msg = f"{kind}: {version} is the champion already"
        raise Rejected(msg)
    if need_promoted and info.promoted_ms is None:
        msg = f"{kind}: {version} never served; roll back only to a version that was champion (or promote it)"
        raise Rejected(msg)
    if info.checkpoint_sha256 is None:
        msg = f"{kind}: {version} has no checkpoint to serve from"
        raise Rejected(msg)
    return info.id


def _add(rt: GroupRuntime, command: Command, now_ms: int) -> Result:
    spec = candidates.spec_of(rt, command.args.candidate, "add_candidate")
    version = candidates.join(rt, spec, now_ms)
    return f"{spec.name} learns as {version} ({spec.gate})", []


def _retire(rt: GroupRuntime, command: Command, now_ms: int) -> Result:
    name = _candidate(rt, command.args.model, "retire")
    state, ctx = rt.state, rt.ctx
    reason, evidence = _why(command)
    state.paused = state.paused - {name}
    if name == RESTART_SLOT:
        version = rt.lanes[name].version
        return f"{name} ({version}) retired", restart.drop(rt, f"retired by {reason}", now_ms)
    lane = rt.close_slot(name)
    out: list[TrainOutput] = []
    if state.canary is not None and state.canary[0] == lane.version:
        out.extend(canary.end(rt, f"{name} was retired", now_ms))
    if ctx.registry.version(lane.version).status == "candidate":
        decision = ctx.promoter.retire(state.name, version=lane.version, reason=f"retired by {reason}",
                                       evidence=evidence, ts_ms=now_ms)  # fmt: skip
        ctx.metrics.decided(state.name, "retire")
        out.append(decision_record(decision))
    return f"{name} ({lane.version}) retired", out


def _release(rt: GroupRuntime, command: Command, now_ms: int) -> Result:
    if not quarantine.engaged(rt):
        msg = f"release_quarantine: group {rt.state.name!r} holds no labels back"
        raise Rejected(msg)
    n = sum(len(j) for j in rt.state.held)
    learn = command.args.learn
    why = f"released by {command.actor}: {command.reason}"
    jobs, out = quarantine.release(rt, learn=learn, why=why, now_ms=now_ms)
    rt.released.extend(jobs)  # handed to the lanes by the step, in order with the data
    return f"{n} held labels {'learned' if learn else 'dropped'}", out


_HANDLERS: dict[CommandKind, Callable[[GroupRuntime, Command, int], Result]] = {
    CommandKind.PAUSE: _pause,
    CommandKind.RESUME: _resume,
    CommandKind.FREEZE: _freeze,
    CommandKind.UNFREEZE: _unfreeze,
    CommandKind.PROMOTE: _promote,
    CommandKind.ROLLBACK: _rollback,
    CommandKind.ADD_CANDIDATE: _add,
    CommandKind.RETIRE: _retire,
    CommandKind.SET_CANARY_CEILING: _ceiling,
    CommandKind.REPLAY: replays.start,
    CommandKind.RELEASE_QUARANTINE: _release,
}
# What `restore` applies again: promotions and rollbacks are the registry's already.
_HELD = {"pause", "resume", "freeze", "unfreeze", "set_canary_ceiling", "add_candidate", "retire", "replay",
         "release_quarantine"}  # fmt: skip
