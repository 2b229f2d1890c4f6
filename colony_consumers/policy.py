"""The policy guard: tool permissions and writeback rules per mission type, mode and
environment. Pure; every decision carries the rule that made it, and the colony records
each one as an event (the policy-block dashboard counts them by rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Decision = Literal["allowed", "denied"]
EXTERNAL_TOOLS = frozenset({"web_research", "browser"})
TOOLS_BY_TYPE: dict[str, frozenset[str]] = {
    "oracle": frozenset({"project_search", "draft_answer"}),
    "crm": frozenset({"crm_lookup", "web_research", "browser", "draft_brief", "crm_writeback"}),
    "catalyst": frozenset({"project_search", "crm_lookup", "draft_strategy"}),
}
RESEARCH_TOOLS = frozenset({"project_search", "crm_lookup", "web_research"})
"""Tools whose work is a call of the research provider (an MCP server's tool, if it is one)."""
MCP_TOOLS_BY_TYPE: dict[str, frozenset[str]] = {
    "oracle": frozenset({"search"}),
    "crm": frozenset({"search"}),
    "catalyst": frozenset({"search"}),
}
"""The MCP tools each mission type's research may call: an MCP server can expose any tool,
and only these are known to be read-only searches."""


@dataclass(frozen=True)
class PolicyContext:
    """What the guard knows about the mission and where it runs."""

    environment: str
    mission_type: str
    mode: str
    autonomous_research: bool = False
    writeback_gate_passed: bool = False
    mcp_tool: str | None = None
    """The MCP server's tool research goes through (MCP_RESEARCH_TOOL); None when research
    is not an MCP server."""


@dataclass(frozen=True)
class PolicyDecision:
    decision: Decision
    rule_id: str
    reason: str

    @property
    def allowed(self) -> bool:
        return self.decision == "allowed"


def allow(rule_id: str, reason: str) -> PolicyDecision:
    return PolicyDecision("allowed", rule_id, reason)


def deny(rule_id: str, reason: str) -> PolicyDecision:
    return PolicyDecision("denied", rule_id, reason)


def evaluate_tool(context: PolicyContext, tool: str) -> PolicyDecision:
    """May a task of this mission use `tool`?"""
    permitted = TOOLS_BY_TYPE.get(context.mission_type, frozenset())
    if tool not in permitted:
        return deny("tool.not_permitted", f"{tool} is not a {context.mission_type} tool")
    refused = production_refusal(context, tool, "")
    if refused is not None:
        return refused
    if tool == "crm_writeback":
        return evaluate_writeback(context)
    return allow(f"{context.mission_type}.tools", f"{tool} is a {context.mission_type} tool")


def production_refusal(context: PolicyContext, tool: str, about: str) -> PolicyDecision | None:
    """Production's rules, the same for the colony's tools and the MCP tools behind them:
    assisted mode only, and no external research unless explicitly allowed."""
    if context.environment != "production":
        return None
    if context.mode == "autonomous":
        return deny("prod.assisted_only", "production runs assisted-mode missions only")
    if tool in EXTERNAL_TOOLS and not context.autonomous_research:
        return deny(
            "prod.no_autonomous_research",
            f"{about}external research is off by default in production",
        )
    return None


def mcp_tool_name(tool: str) -> str:
    """How an MCP tool is named in policy decisions, apart from the colony's own tools."""
    return f"mcp:{tool}"


def evaluate_mcp_tool(context: PolicyContext, tool: str) -> PolicyDecision:
    """May `tool`'s research (a RESEARCH_TOOLS tool the guard allowed) call the MCP tool
    research goes through? Asked apart from `tool` itself: the MCP server is another
    party, and its tool may be anything the server offers."""
    assert context.mcp_tool is not None, "research does not go through MCP"
    name, mission_type = mcp_tool_name(context.mcp_tool), context.mission_type
    if context.mcp_tool not in MCP_TOOLS_BY_TYPE.get(mission_type, frozenset()):
        return deny("mcp.tool_not_permitted", f"{name} is not an MCP tool of {mission_type}")
    refused = production_refusal(context, tool, f"{name} for {tool}: ")
    if refused is not None:
        return refused
    return allow(f"{mission_type}.mcp_tools", f"{name} is an MCP tool of {mission_type}")


def evaluate_writeback(context: PolicyContext) -> PolicyDecision:
    """May this mission propose a CRM writeback (which still needs an operator)?"""
    if context.mode == "dry_run":
        return deny("writeback.dry_run", "dry-run missions never write")
    if context.mission_type != "crm":
        return deny("writeback.crm_only", "only CRM missions write back")
    if context.environment == "production" and not context.writeback_gate_passed:
        return deny(
            "prod.writeback_gate",
            "production writebacks wait until the approval route passed its gate in staging",
        )
    return allow("writeback.approval_required", "proposed; an operator must approve it")
