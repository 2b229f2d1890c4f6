"""Which missions an environment accepts, by the spec's rollout steps (section 8).

  1. health and dry-run mission creation        4. Oracle assisted in production
  2. Oracle assisted in staging                 5. CRM assisted in production
  3. CRM assisted in staging                    6. Catalyst strategy missions in staging

Production runs assisted (or dry-run) missions only, never autonomous ones, and no
Catalyst missions; local development accepts everything. Pure: the root asks
`refusal(...)` and turns a reason into a 422 problem naming the rule.
"""

from __future__ import annotations

from ledger.commands import MissionMode, MissionType

# (environment, mission type) -> the rollout step from which assisted missions run
ASSISTED_FROM: dict[tuple[str, str], int] = {
    ("staging", "oracle"): 2,
    ("staging", "crm"): 3,
    ("production", "oracle"): 4,
    ("production", "crm"): 5,
    ("staging", "catalyst"): 6,
}


def refusal(
    environment: str, step: int, mission_type: MissionType, mode: MissionMode
) -> str | None:
    """Why this environment at this rollout step refuses the mission, or None."""
    if environment == "local":
        return None
    if environment == "production" and mission_type == "catalyst":
        return "catalyst missions run in staging only (rollout step 6)"
    if environment == "production" and mode == "autonomous":
        return "production runs assisted-mode missions only"
    if mode == "dry_run":
        if mission_type == "catalyst" and step < ASSISTED_FROM[(environment, "catalyst")]:
            return "catalyst missions start at rollout step 6"
        return None
    first = ASSISTED_FROM[(environment, mission_type)]
    if step < first:
        return (
            f"{mission_type} {mode} missions start in {environment} at rollout step {first}"
            f" (this environment is at step {step})"
        )
    return None
