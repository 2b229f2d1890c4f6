"""The planner: which tasks a mission runs, in order. Pure."""

from __future__ import annotations

from ledger.commands import PlannedTask

# (task id, tool, what it does)
PLANS: dict[str, list[tuple[str, str, str]]] = {
    "oracle": [
        ("gather_context", "project_search", "search the project's knowledge base"),
        ("draft_answer", "draft_answer", "draft an answer citing the gathered sources"),
    ],
    "crm": [
        ("gather_account", "crm_lookup", "read the account's CRM record"),
        ("research", "web_research", "research the company"),
        ("draft_brief", "draft_brief", "write the lead-intelligence brief"),
    ],
    "catalyst": [
        ("gather_context", "project_search", "search project context"),
        ("gather_account", "crm_lookup", "read account context"),
        ("draft_strategy", "draft_strategy", "write the strategy brief"),
    ],
}


def plan(mission_type: str) -> list[PlannedTask]:
    """The mission's tasks; each depends on the one before (kind = the tool it uses)."""
    steps = PLANS[mission_type]
    return [
        PlannedTask(
            task_id=task_id,
            kind=tool,
            description=what,
            depends_on=[steps[i - 1][0]] if i else [],
        )
        for i, (task_id, tool, what) in enumerate(steps)
    ]


def next_task(mission_type: str, done: set[str]) -> str | None:
    """The first planned task not yet done, or None when all are."""
    for task_id, _, _ in PLANS[mission_type]:
        if task_id not in done:
            return task_id
    return None


def tool_of(mission_type: str, task_id: str) -> str:
    return next(tool for t, tool, _ in PLANS[mission_type] if t == task_id)
