"""The planner: which tasks a mission runs and what each waits for. Pure.

Tasks whose dependencies have succeeded may run in parallel, up to
MAX_WORKERS_PER_MISSION at once.
"""

from __future__ import annotations

from collections.abc import Mapping

from ledger.commands import PlannedTask

# task id -> (tool, what it does, tasks it waits for)
PLANS: dict[str, dict[str, tuple[str, str, tuple[str, ...]]]] = {
    "oracle": {
        "gather_context": ("project_search", "search the project's knowledge base", ()),
        "draft_answer": ("draft_answer", "draft an answer citing the sources", ("gather_context",)),
    },
    "crm": {
        "gather_account": ("crm_lookup", "read the account's CRM record", ()),
        "research": ("web_research", "research the company", ()),
        "draft_brief": (
            "draft_brief",
            "write the lead-intelligence brief",
            ("gather_account", "research"),
        ),
    },
    "catalyst": {
        "gather_context": ("project_search", "search project context", ()),
        "gather_account": ("crm_lookup", "read account context", ()),
        "draft_strategy": (
            "draft_strategy",
            "write the strategy brief",
            ("gather_context", "gather_account"),
        ),
    },
}


def plan(mission_type: str) -> list[PlannedTask]:
    """The mission's tasks (kind = the tool each uses), with their dependencies."""
    return [
        PlannedTask(task_id=task_id, kind=tool, description=what, depends_on=list(deps))
        for task_id, (tool, what, deps) in PLANS[mission_type].items()
    ]


def ready_tasks(mission_type: str, statuses: Mapping[str, str]) -> list[str]:
    """Planned tasks whose dependencies have all succeeded, in plan order."""
    return [
        task_id
        for task_id, (_, _, deps) in PLANS[mission_type].items()
        if statuses.get(task_id) == "planned"
        and all(statuses.get(dep) == "succeeded" for dep in deps)
    ]


def tool_of(mission_type: str, task_id: str) -> str:
    return PLANS[mission_type][task_id][0]
