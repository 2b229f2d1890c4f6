"""Which missions an environment accepts, by the spec's rollout steps (section 8).

  1. health and dry-run mission creation        4. Oracle assisted in production
  2. Oracle assisted in staging                 5. CRM assisted in production
  3. CRM assisted in staging                    6. Catalyst strategy missions in staging

Production runs assisted (or dry-run) missions only, never autonomous ones, and no
Catalyst missions; local development accepts everything. Pure: the root asks
`refusal(...)` and turns a reason into a 422 problem naming the rule.
"""

from __future__ import annotations

from typing import Any

from ledger.commands import MissionMode, MissionType
from ledger.release import CRM_WRITEBACKS_STEP

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


PRODUCTION_STEPS = frozenset({4, 5})


def advance_refusal(
    environment: str,
    to_step: int,
    version: str,
    local_run_passed: bool,
    report: dict[str, Any] | None,
) -> str | None:
    """Why `environment` may not advance to `to_step` on this evidence, or None.

    The spec's evidence: a staging step needs a passing gate run of this release in
    staging itself; a production step needs the signed report of such a staging run (its
    signature already checked by the caller), and CRM writebacks in production (step 5)
    need gate 2 passed in it. Local development needs nothing."""
    if environment == "local":
        return None
    if environment == "staging":
        if local_run_passed:
            return None
        return f"no passing gate run of release {version} in staging: run `velocity gates run`"
    if to_step not in PRODUCTION_STEPS:
        return f"production runs steps 4 and 5 only (step {to_step} is staging's)"
    if report is None:
        return "a production step needs --evidence: a signed staging gate report"
    return report_refusal(report, version, needs_gate_2=to_step >= CRM_WRITEBACKS_STEP)


def report_refusal(report: dict[str, Any], version: str, needs_gate_2: bool) -> str | None:
    """What a staging gate report lacks to stand as production evidence."""
    if report.get("environment") != "staging":
        return f"the report is from {report.get('environment')!r}, not staging"
    if report.get("version") != version:
        return f"the report is of release {report.get('version')!r}, this root runs {version}"
    if report.get("passed") is not True:
        return "the staging gate run did not pass"
    checks = report.get("checks") or []
    gates = {check.get("gate") for check in checks if check.get("passed")}
    missing = sorted({1, 2, 3, 4} - gates)
    if missing:
        return f"the report has no passing check of gate(s) {missing}"
    if needs_gate_2 and any(c.get("gate") == 2 and not c.get("passed") for c in checks):
        return "CRM writebacks in production need gate 2 passed in staging"
    return None
