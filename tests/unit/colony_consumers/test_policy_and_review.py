"""The colony's pure rules: policy guard, planner, reviewer, qualification, breaker."""

from __future__ import annotations

import pytest

from colony_consumers.crm_writeback import qualify
from colony_consumers.planner import plan, ready_tasks
from colony_consumers.policy import PolicyContext, evaluate_tool, evaluate_writeback
from colony_consumers.providers import CircuitBreaker, Document, LocalModel
from colony_consumers.reviewer import Source, review


def context(**overrides: object) -> PolicyContext:
    fields = {"environment": "local", "mission_type": "crm", "mode": "assisted"} | overrides
    return PolicyContext(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "tool", "decision", "rule"),
    [
        ({}, "crm_lookup", "allowed", "crm.tools"),
        ({"mission_type": "oracle"}, "crm_lookup", "denied", "tool.not_permitted"),
        ({"mission_type": "catalyst"}, "crm_writeback", "denied", "tool.not_permitted"),
        ({"environment": "production"}, "web_research", "denied", "prod.no_autonomous_research"),
        (
            {"environment": "production", "autonomous_research": True},
            "web_research",
            "allowed",
            "crm.tools",
        ),
        (
            {"environment": "production", "mode": "autonomous"},
            "crm_lookup",
            "denied",
            "prod.assisted_only",
        ),
        ({"environment": "staging"}, "web_research", "allowed", "crm.tools"),
    ],
)
def test_tool_decisions_carry_their_rule(
    overrides: dict[str, object], tool: str, decision: str, rule: str
) -> None:
    result = evaluate_tool(context(**overrides), tool)
    assert (result.decision, result.rule_id) == (decision, rule)


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"mode": "dry_run"}, "writeback.dry_run"),
        ({"mission_type": "oracle"}, "writeback.crm_only"),
        ({"environment": "production"}, "prod.writeback_gate"),
    ],
)
def test_blocked_writebacks_are_denied(overrides: dict[str, object], rule: str) -> None:
    result = evaluate_writeback(context(**overrides))
    assert not result.allowed and result.rule_id == rule


def test_production_writebacks_need_the_staging_gate_then_still_an_operator() -> None:
    result = evaluate_writeback(context(environment="production", writeback_gate_passed=True))
    assert result.allowed and result.rule_id == "writeback.approval_required"


def test_independent_tasks_are_ready_together_and_the_draft_waits_for_both() -> None:
    tasks = plan("crm")
    assert [t.task_id for t in tasks] == ["gather_account", "research", "draft_brief"]
    assert tasks[2].depends_on == ["gather_account", "research"]
    fresh = {t.task_id: "planned" for t in tasks}
    assert ready_tasks("crm", fresh) == ["gather_account", "research"]
    half = fresh | {"gather_account": "succeeded", "research": "running"}
    assert ready_tasks("crm", half) == []
    both = half | {"research": "succeeded"}
    assert ready_tasks("crm", both) == ["draft_brief"]


async def test_the_local_model_cites_the_sources_it_drafts_from() -> None:
    sources = [
        Document("a", "kb://a", "The billing vendor API is the main risk. Cats are nice."),
        Document("b", "kb://b", "Budget is under plan."),
    ]
    output = await LocalModel().draft("What is the main risk?", sources)
    assert "billing vendor API is the main risk [1]" in output


def source(number: int) -> Source:
    return Source(number=number, title="t", source=f"kb://{number}", content_hash=str(number) * 64)


def test_a_fully_cited_answer_passes_and_explains_why() -> None:
    packet = review("Risk is billing [1]. Budget is fine [2].", [source(1), source(2)], [], [])
    assert packet.verdict == "pass"
    assert packet.claims[0].evidence[0].content_hash == "1" * 64
    assert "2 of 2 claims cite 2 stored sources" in packet.why_trustworthy


def test_uncited_claims_or_denials_warn_and_no_evidence_fails() -> None:
    assert review("Risk [1]. Unsupported.", [source(1)], [], []).verdict == "pass_with_warnings"
    assert (
        review("Risk [1].", [source(1)], ["web_research: rule"], []).verdict == "pass_with_warnings"
    )
    assert review("No sources were found.", [], [], []).verdict == "fail"
    assert review("Made up [7].", [source(1)], [], []).verdict == "fail"


def test_qualification_reflects_size_interest_and_budget() -> None:
    keen = qualify(120, "asked for a demo; budget owner is the COO")
    cold = qualify(45, "interested but no budget until next year")
    assert int(keen["qualification_score"]) >= 60 and "demo" in keen["next_step"]
    assert int(cold["qualification_score"]) < 60


def test_the_circuit_opens_after_repeated_failures() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_s=60)
    for _ in range(3):
        breaker.record(ok=False)
    assert breaker.open
    healthy = CircuitBreaker(threshold=3)
    healthy.record(ok=False)
    healthy.record(ok=True)
    healthy.record(ok=False)
    assert not healthy.open
