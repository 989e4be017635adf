"""What the admin API takes and answers: the models its OpenAPI document is generated from."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataflows.ports import Decision, OffsetRange, VersionInfo
from dataflows.records import CommandRecord, ModelReport

__all__ = [
    "Accepted", "AddCandidateBody", "Alive", "Board", "BoardModel", "CanaryCeilingBody", "CommandBody", "CommandPage",
    "CommandView", "DecisionPage", "DecisionView", "ErrorBody", "GroupList", "Health", "ModelBody", "PromoteBody",
    "ReleaseQuarantineBody", "RetireBody", "RollbackBody", "ServingView", "VerdictView", "VersionDetail",
    "VersionList", "VersionView", "VoteMember", "VoteView",
]  # fmt: skip

Name = Annotated[str, Field(min_length=1, max_length=128)]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


# -- health -----------------------------------------------------------------------------------------


class Alive(_Out):
    status: str = "ok"


class Health(_Out):
    ready: bool
    reasons: list[str] = Field(description="why not ready: broker unreachable, no champion yet, recovering")


class ErrorBody(_Out):
    detail: str
    kind: str = Field(description="not_found, conflict, invalid, unavailable, unauthorized, read_only")
    command_id: str | None = Field(None, description="a command that may still be applied: look it up later")


# -- groups and their boards ------------------------------------------------------------------------


class VoteMember(_Out):
    version: str | None = Field(description="the version whose latest state serves; null: no state yet")
    weight: float
    share: float | None = Field(None, description="with model.vote.policy bandit: its share of the keys")


class VoteView(_Out):
    choice: str = Field(
        description="what serves the vote's route: vote, or the one member the guard chose "
        "(with the bandit policy, each event is served by one member on its share of the keys)"
    )
    members: dict[str, VoteMember] = Field(description="by slot (fork, tree, ...)")


class ServingView(_Out):
    seq: int = Field(description="the serving table's number in the group's history")
    champion: str
    canary: str | None
    canary_share: float
    live: str | None = Field(description="the refresh fork whose state serves the champion's route, if any")
    vote: VoteView | None = Field(None, description="with model.vote: its members, weights and what serves")


class BoardModel(_Out):
    version: str
    name: str = Field(description="the slot it was made for: champion, or a candidate's name")
    role: str = Field(description="champion, standby or candidate")
    samples: int
    rolling_accuracy: float | None = Field(description="from its latest report; null until one is read")
    lag_batches: int | None = Field(description="labelled batches waiting for it to learn them; null: no report yet")
    report_ts_ms: int | None
    trial: dict[str, str] = Field(description="each evaluator's latest phase on this version")


class Board(_Out):
    group: str
    serving: ServingView | None = Field(description="what this process serves; null: nothing yet")
    models: list[BoardModel]


class GroupList(_Out):
    groups: list[str]


# -- versions ---------------------------------------------------------------------------------------


class RangeView(_Out):
    topic: str
    partition: int
    first: int
    last: int

    @classmethod
    def of(cls, r: OffsetRange) -> RangeView:
        return cls(topic=r.topic, partition=r.partition, first=r.first, last=r.last)


class VersionView(_Out):
    id: str
    number: int
    name: str
    parent: str | None
    framework: str
    status: str
    created_ms: int
    promoted_ms: int | None
    retired_ms: int | None
    samples: int
    checkpoint_sha256: str | None
    ranges: list[RangeView] = Field(description="the offsets it learned from (its lineage, down to Kafka)")
    trial: dict[str, str] = Field(description="each evaluator's latest phase on this version")

    @classmethod
    def of(cls, v: VersionInfo, verdicts: list[dict[str, Any]]) -> VersionView:
        return cls(
            id=v.id, number=v.number, name=v.name, parent=v.parent, framework=v.framework, status=v.status,
            created_ms=v.created_ms, promoted_ms=v.promoted_ms, retired_ms=v.retired_ms, samples=v.samples,
            checkpoint_sha256=v.checkpoint_sha256, ranges=[RangeView.of(r) for r in v.ranges],
            trial={str(d["evaluator"]): str(d["phase"]) for d in verdicts},  # the latest of each, in order
        )  # fmt: skip


class VersionList(_Out):
    group: str
    versions: list[VersionView]


class VerdictView(_Out):
    evaluator: str
    phase: str
    reason: str
    evidence: dict[str, Any]
    ts_ms: int


class VersionDetail(_Out):
    version: VersionView
    lineage: list[VersionView] = Field(description="its ancestors along parent, newest first")
    verdicts: list[VerdictView] = Field(description="every verdict on it, oldest first")


# -- decisions and commands -------------------------------------------------------------------------


class DecisionView(_Out):
    seq: int = Field(description="its place in the group's decisions, from 0")
    action: str
    version: str
    previous: str | None
    reason: str
    evidence: dict[str, Any]
    ts_ms: int

    @classmethod
    def of(cls, seq: int, d: Decision) -> DecisionView:
        return cls(seq=seq, action=d.action, version=d.version, previous=d.previous, reason=d.reason,
                   evidence=dict(d.evidence), ts_ms=d.ts_ms)  # fmt: skip


class DecisionPage(_Out):
    total: int
    skip: int
    limit: int
    items: list[DecisionView]


class CommandView(_Out):
    id: str
    kind: str
    args: dict[str, Any]
    actor: str
    reason: str
    outcome: str = Field(description="applied, rejected, duplicate or expired")
    detail: str
    issued_ts_ms: int
    ts_ms: int
    offset: int | None = Field(description="where it was read on the control topic")

    @classmethod
    def of(cls, r: CommandRecord) -> CommandView:
        return cls(id=r.id, kind=r.kind, args=dict(r.args), actor=r.actor, reason=r.reason, outcome=r.outcome,
                   detail=r.detail, issued_ts_ms=r.issued_ts_ms, ts_ms=r.ts_ms,
                   offset=r.source.offset if r.source is not None else None)  # fmt: skip


class CommandPage(_Out):
    skip: int
    limit: int
    more: bool = Field(description="whether commands follow this page")
    items: list[CommandView]


class Accepted(_Out):
    id: str = Field(description="the command's id: GET /groups/{group}/commands/{id} tells its outcome")
    group: str
    kind: str
    outcome: CommandView | None = Field(description="what became of it, if known within wait_s")


# -- commands' bodies -------------------------------------------------------------------------------


class CommandBody(BaseModel):
    """What every command needs: why, and who asks (``actor``; the API's default: ``api``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=1, max_length=2000, description="why: kept with the command and its decisions")
    actor: Name = Field("api", description="who asks (a person or a tool); the token says only that they may")

    @model_validator(mode="after")
    def _utf8(self) -> Self:
        # JSON may escape a lone surrogate ("\ud800"): Python reads it, but no UTF-8 writer can write it.
        try:
            json.dumps(self.model_dump(), ensure_ascii=False).encode()
        except UnicodeEncodeError:
            msg = "text must be valid Unicode (a lone surrogate such as \\ud800 is not)"
            raise ValueError(msg) from None
        return self


class ModelBody(CommandBody):
    model: Name | None = Field(None, description="a candidate's name; null: every candidate")


class RetireBody(CommandBody):
    model: Name = Field(description="the candidate to retire (never the champion)")


class PromoteBody(CommandBody):
    model: Name | None = Field(None, description="a candidate's name: its model as it is now")
    version: Name | None = Field(None, description="or a version with a checkpoint, e.g. default/7")
    skip_golden: bool = Field(False, description="promote even if the golden set is not passed")


class RollbackBody(CommandBody):
    version: Name | None = Field(None, description="a version that served before; null: the standby")


class AddCandidateBody(CommandBody):
    candidate: dict[str, Any] = Field(description="as one entry of model.candidates in the config file")


class OffsetRangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: str = Field(min_length=1, max_length=128, description="an input topic (events or labels)")
    partition: int = Field(ge=0, le=2**31 - 1)
    first: int = Field(ge=0, le=2**53, description="the first offset, included")
    last: int = Field(ge=0, le=2**53, description="the last offset, included")


class ReplayBody(AddCandidateBody):
    ranges: list[OffsetRangeBody] = Field(
        min_length=1, max_length=1024, description="stretches of the input topics the candidate learns first"
    )


class ReleaseQuarantineBody(CommandBody):
    learn: bool = Field(True, description="learn the held labels (true) or drop them (false)")


class CanaryCeilingBody(CommandBody):
    share: float = Field(ge=0.0, le=1.0, description="the canary serves at most this share of keys; 0: no canary")


def report_fields(report: ModelReport | None) -> dict[str, Any]:
    if report is None:
        return {"rolling_accuracy": None, "lag_batches": None, "report_ts_ms": None}
    return {"rolling_accuracy": finite(report.rolling_accuracy), "lag_batches": report.lag_batches,
            "report_ts_ms": report.ts_ms}  # fmt: skip
