"""Commands: what someone asks the ledger to do to a mission. Imperative names.

A command is a request, not a fact: the decider turns it into events, or into a
CommandRejected event with a machine-readable reason. Every command carries a
`command_id`, the idempotency key. Field docs live in the .avsc files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from ledger.text import refuse_unstorable

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$"
"""Mission and writeback ids: what the root can put in a URL path (uuids in practice)."""
MissionType = Literal["oracle", "crm", "catalyst"]
MissionMode = Literal["dry_run", "assisted", "autonomous"]
ToolDecision = Literal["allowed", "denied"]
Verdict = Literal["pass", "pass_with_warnings", "fail"]


class StorableModel(BaseModel):
    """A record whose text can be stored anywhere downstream (see ledger/text.py): a
    command carrying NUL or a lone surrogate is refused when it is built or decoded."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="after")
    def _storable_text(self, info: ValidationInfo) -> StorableModel:
        if info.context is not TEXT_CHECKED:
            refuse_unstorable(self.__dict__)
        return self


TEXT_CHECKED: dict[str, bool] = {"text_checked": True}
"""The validation context of a command decoded from a record that `surely_storable`
passed as a whole: its parts' text needs no second look."""


class OperatorProof(BaseModel):
    """The root's Ed25519 signature over a command's canonical bytes (ledger/authority.py):
    proof that the root authenticated the operator named in `actor`."""

    model_config = ConfigDict(frozen=True)

    key_id: str = Field(min_length=1)
    signature: bytes = Field(min_length=64, max_length=64)


class CommandMeta(StorableModel):
    """Identity and provenance of a command (schemas_avro/velocity.CommandMeta.avsc)."""

    command_id: str = Field(min_length=1)
    mission_id: str = Field(pattern=ID_PATTERN)
    issued_at: datetime
    correlation_id: str
    trace_id: str
    actor: str = Field(min_length=1)
    proof: OperatorProof | None = None


class CommandBody(StorableModel):
    """Base of every command's own fields; the class name is the command type."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PlannedTask(BaseModel):
    """One task of a mission's plan (schemas_avro/velocity.PlannedTask.avsc)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task_id: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    description: str
    depends_on: list[str] = Field(default_factory=list)


class RequestMission(CommandBody):
    """Open a mission. The root has normalised it (budgets filled, text trimmed)."""

    mission_type: MissionType
    mode: MissionMode
    objective: str = Field(min_length=1, max_length=4_000)
    environment: str
    time_budget_ms: int = Field(gt=0)
    token_budget: int = Field(gt=0)
    project_id: str | None = None
    lead_company: str | None = None
    lead_contact: str | None = None
    replay_of: str | None = None


class QueueMission(CommandBody):
    """The colony is at MAX_CONCURRENT_MISSIONS: the mission waits, visibly, in line."""

    position: int = Field(ge=1)
    limit: int = Field(ge=1)


class StartPlanning(CommandBody):
    """The planner took the mission."""

    planner: str


class RecordPlan(CommandBody):
    """The planner's plan: the tasks the mission will run."""

    tasks: list[PlannedTask] = Field(min_length=1)
    rationale: str


class StartTask(CommandBody):
    task_id: str
    worker: str


class CompleteTask(CommandBody):
    task_id: str
    summary: str
    artifact_hashes: list[str] = Field(default_factory=list)
    tokens_used: int = Field(ge=0)
    duration_ms: int = Field(ge=0)
    notes: list[str] = Field(default_factory=list)


class FailTask(CommandBody):
    task_id: str
    error: str
    retryable: bool


class RetryTask(CommandBody):
    task_id: str


class TimeOutTask(CommandBody):
    task_id: str
    timeout_ms: int = Field(gt=0)


class RecordToolDecision(CommandBody):
    """The policy guard's decision on a tool request, with the rule that decided it."""

    task_id: str
    tool: str
    decision: ToolDecision
    rule_id: str
    reason: str


class RecordMcpCall(CommandBody):
    """An MCP tool call on the root about this mission: who (the command's actor), which
    tool, a hash of its arguments (the arguments themselves may hold what the trail should
    not), and how it ended. Accepted in any status, terminal too: reads are audited."""

    tool: str = Field(min_length=1, max_length=100)
    arguments_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    outcome: str = Field(min_length=1, max_length=200)


class RecordArtifact(CommandBody):
    """One stored artifact. Roots send RecordArtifacts now; this stays for commands an
    older root wrote during a rolling upgrade."""

    artifact_id: str
    kind: str
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    source: str
    size_bytes: int = Field(ge=0)


class StoredArtifact(BaseModel):
    """One artifact the root stored for a mission (schemas_avro/velocity.StoredArtifact.avsc);
    its text is checked with the command or event that carries it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    artifact_id: str
    kind: str
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    source: str
    size_bytes: int = Field(ge=0)


MAX_ARTIFACTS_PER_RECORD = 100
"""The most artifacts one RecordArtifacts holds: a record stays small (the root batches 20)."""


class RecordArtifacts(CommandBody):
    """Artifacts the root stored for this mission in one request: one event for a task's
    sources, not one each (an Oracle mission's ledger is 15 events, not 17)."""

    artifacts: list[StoredArtifact] = Field(min_length=1, max_length=MAX_ARTIFACTS_PER_RECORD)


class RecordBudgetUse(CommandBody):
    tokens: int = Field(ge=0)
    time_ms: int = Field(ge=0)


class BeginReview(CommandBody):
    reviewer: str


class RecordReview(CommandBody):
    """The reviewer packet (stored as an artifact) and its verdict."""

    packet_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    verdict: Verdict
    output: str
    checks: list[str] = Field(default_factory=list)


class ProposeWriteback(CommandBody):
    """A CRM change the colony wants made; it waits for an operator."""

    writeback_id: str = Field(pattern=ID_PATTERN)
    target: str
    record_ref: str
    changes: dict[str, str] = Field(min_length=1)
    rationale: str


class ApproveWriteback(CommandBody):
    writeback_id: str
    reason: str = Field(min_length=1)


class RejectWriteback(CommandBody):
    writeback_id: str
    reason: str = Field(min_length=1)


class RecordWritebackResult(CommandBody):
    writeback_id: str
    succeeded: bool
    detail: str


class CompleteMission(CommandBody):
    output: str


class FailMission(CommandBody):
    reason: str = Field(min_length=1)


class CancelMission(CommandBody):
    reason: str = Field(min_length=1)


class TimeOutMission(CommandBody):
    timeout_ms: int = Field(gt=0)


class ReplayMission(CommandBody):
    """Run a terminal mission again as a new mission linked to this one."""

    new_mission_id: str
    reason: str = Field(min_length=1)


class StartGateRun(CommandBody):
    """Open a release gate run (stream `release-gates:<run_id>`, ledger/release.py)."""

    run_id: str = Field(pattern=ID_PATTERN)
    version: str = Field(min_length=1, max_length=100)
    environment: Literal["local", "staging", "production"]
    root_url: str = Field(max_length=500)


class RecordGateCheck(CommandBody):
    gate: int = Field(ge=1, le=4)
    check: str = Field(min_length=1, max_length=200)
    passed: bool
    evidence: str = Field(max_length=20_000)
    duration_ms: int = Field(ge=0)


class CompleteGateRun(CommandBody):
    """Close the run; the ledger computes whether it passed from the checks it holds."""


class AdvanceRollout(CommandBody):
    """Move an environment's rollout (stream `rollout:<environment>`) to a later step."""

    environment: Literal["local", "staging", "production"]
    to_step: int = Field(ge=1, le=6)
    reason: str = Field(min_length=1)
    evidence_hash: str | None = None
    evidence_run_id: str | None = None


class RollBackRollout(CommandBody):
    environment: Literal["local", "staging", "production"]
    to_step: int = Field(ge=1, le=6)
    reason: str = Field(min_length=1)


class Command(BaseModel):
    """A command as it travels on `mission.commands`."""

    model_config = ConfigDict(frozen=True)

    meta: CommandMeta
    body: CommandBody

    @property
    def command_type(self) -> str:
        return type(self.body).__name__

    @classmethod
    def issue(
        cls,
        mission_id: str,
        body: CommandBody,
        *,
        command_id: str,
        actor: str,
        trace_id: str,
        correlation_id: str | None = None,
    ) -> Command:
        """A command issued now (the mission id is its correlation id unless given).

        Assembled from its parts without validating them again: a body is validated when
        it is built, and the command's own validation ran each part's checks (the
        unstorable-text scan among them) a second time."""
        meta = CommandMeta(
            command_id=command_id,
            mission_id=mission_id,
            issued_at=datetime.now(UTC),
            correlation_id=correlation_id or mission_id,
            trace_id=trace_id,
            actor=actor,
        )
        return cls.model_construct(meta=meta, body=body)


COMMAND_TYPES: dict[str, type[CommandBody]] = {
    cls.__name__: cls
    for cls in (
        RequestMission,
        QueueMission,
        StartPlanning,
        RecordPlan,
        StartTask,
        CompleteTask,
        FailTask,
        RetryTask,
        TimeOutTask,
        RecordToolDecision,
        RecordMcpCall,
        RecordArtifact,
        RecordArtifacts,
        RecordBudgetUse,
        BeginReview,
        RecordReview,
        ProposeWriteback,
        ApproveWriteback,
        RejectWriteback,
        RecordWritebackResult,
        CompleteMission,
        FailMission,
        CancelMission,
        TimeOutMission,
        ReplayMission,
        StartGateRun,
        RecordGateCheck,
        CompleteGateRun,
        AdvanceRollout,
        RollBackRollout,
    )
}
