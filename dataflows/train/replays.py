"""An operator's ``replay``: a new candidate that first learns stretches of the input topics, read
again off the live flow (`dataflows.replay`), then joins the group.

`start` (the command) checks the candidate and the stretches at once — a stretch retention deleted
is refused, naming the earliest offset left — and starts reading on a thread of its own. `adopt`
(every collect of the train step) joins each finished replay's candidate, its first job the
examples read, with the stretches as their offsets: the version's lineage starts with them. A
replay that fails while reading is reported with a second record of its command (``rejected``).
A restart before it joined reads again (`commands.restore`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from dataflows.config import CandidateSpec
from dataflows.control import Command, Outcome
from dataflows.decode import Decoder
from dataflows.jobs import Job
from dataflows.ports import OffsetRange
from dataflows.records import CommandRecord
from dataflows.replay import Replay, ReplayError, check_ranges
from dataflows.train import candidates
from dataflows.train.candidates import Rejected
from dataflows.train.state import GroupRuntime, TrainOutput

__all__ = ["PendingReplay", "adopt", "start"]

log = logging.getLogger("headwater")

REPLAY_SEQ = 0  # a live job's sequence number starts at 1: the replay is evidence for no trial


@dataclass
class PendingReplay:
    command: Command
    spec: CandidateSpec
    replay: Replay


def start(rt: GroupRuntime, command: Command, now_ms: int) -> tuple[str, list[TrainOutput]]:
    config = rt.ctx.config
    spec = candidates.spec_of(rt, command.args.candidate, "replay")
    ranges = [OffsetRange(r.topic, r.partition, r.first, r.last) for r in command.args.ranges]
    try:
        check_ranges(config.brokers, config.consumer_config, ranges, config.topics.inputs())
    except ReplayError as exc:
        raise Rejected(str(exc)) from None
    decoder = Decoder(config.schema, config.topics.events, config.topics.labels)
    replay = Replay(config.brokers, config.consumer_config, ranges, decoder, len(config.schema.features))
    rt.replays.append(PendingReplay(command, spec, replay))
    n = sum(r.last - r.first + 1 for r in ranges)
    return f"replaying {n} messages for {spec.name}: it joins the group once it has read them", []


def adopt(rt: GroupRuntime, now_ms: int) -> list[TrainOutput]:
    """Join the candidates whose replay has read its stretches."""
    out: list[TrainOutput] = []
    for pending in [p for p in rt.replays if p.replay.result.done()]:
        rt.replays.remove(pending)
        spec, replay = pending.spec, pending.replay
        try:
            x, y = replay.result.result()
            first = Job(REPLAY_SEQ, x, y, np.zeros(len(y), dtype=np.int8), replay.ranges)
            ranges = [[r.topic, r.partition, r.first, r.last] for r in replay.ranges]
            version = candidates.join(rt, spec, now_ms, first, replayed=ranges, command=pending.command.id)
            log.info("group %s: %s joined as %s after replaying %d examples", rt.state.name, spec.name, version, len(y))
        except (ReplayError, Rejected, OSError) as exc:
            log.error("group %s: replay for %s failed: %s", rt.state.name, spec.name, exc)
            out.append(_failed(rt, pending.command, str(exc), now_ms))
    return out


def _failed(rt: GroupRuntime, command: Command, detail: str, now_ms: int) -> CommandRecord:
    record = CommandRecord(
        group=rt.state.name, id=command.id, kind=command.kind.value, args=command.wire_args(), actor=command.actor,
        reason=command.reason, outcome=Outcome.REJECTED.value, detail=f"the replay failed: {detail}",
        issued_ts_ms=command.ts_ms, ts_ms=now_ms, source=command.source,
    )  # fmt: skip
    rt.ctx.registry.record_command(record)
    return record
