"""Rollout rules per environment and step (spec section 8)."""

from __future__ import annotations

import pytest

from gateway.rollout import advance_refusal, refusal


@pytest.mark.parametrize(
    ("environment", "step", "mission_type", "mode", "allowed"),
    [
        ("local", 1, "catalyst", "autonomous", True),
        ("staging", 1, "oracle", "dry_run", True),
        ("staging", 1, "oracle", "assisted", False),
        ("staging", 2, "oracle", "assisted", True),
        ("staging", 2, "crm", "assisted", False),
        ("staging", 3, "crm", "assisted", True),
        ("staging", 5, "catalyst", "assisted", False),
        ("staging", 6, "catalyst", "assisted", True),
        ("production", 3, "oracle", "assisted", False),
        ("production", 4, "oracle", "assisted", True),
        ("production", 4, "crm", "assisted", False),
        ("production", 5, "crm", "assisted", True),
        ("production", 6, "oracle", "autonomous", False),
        ("production", 6, "catalyst", "dry_run", False),
        ("production", 1, "crm", "dry_run", True),
    ],
)
def test_rollout_rules(
    environment: str, step: int, mission_type: str, mode: str, allowed: bool
) -> None:
    reason = refusal(environment, step, mission_type, mode)  # type: ignore[arg-type]
    assert (reason is None) == allowed, reason


def staging_report(**changes: object) -> dict[str, object]:
    checks = [{"gate": gate, "check": f"g{gate}", "passed": True} for gate in (1, 2, 3, 4)]
    return {
        "environment": "staging",
        "version": "1.2.0",
        "passed": True,
        "checks": checks,
    } | changes


def test_local_needs_no_evidence_and_staging_needs_its_own_passing_run() -> None:
    assert advance_refusal("local", 6, "1.2.0", False, None) is None
    assert "velocity gates run" in (advance_refusal("staging", 2, "1.2.0", False, None) or "")
    assert advance_refusal("staging", 3, "1.2.0", True, None) is None


def test_production_needs_a_passing_staging_report_of_the_same_release() -> None:
    assert "--evidence" in (advance_refusal("production", 4, "1.2.0", True, None) or "")
    assert advance_refusal("production", 4, "1.2.0", False, staging_report()) is None
    assert "release" in (advance_refusal("production", 4, "1.3.0", False, staging_report()) or "")
    production = staging_report(environment="production")
    assert "not staging" in (advance_refusal("production", 4, "1.2.0", False, production) or "")
    assert "staging's" in (advance_refusal("production", 6, "1.2.0", False, staging_report()) or "")


def test_crm_writebacks_in_production_need_gate_2_in_the_report() -> None:
    checks = [{"gate": g, "check": f"g{g}", "passed": True} for g in (1, 3, 4)]
    no_gate_2 = staging_report(checks=checks)
    assert "gate(s) [2]" in (advance_refusal("production", 5, "1.2.0", False, no_gate_2) or "")
    failed = staging_report(passed=False)
    assert "did not pass" in (advance_refusal("production", 5, "1.2.0", False, failed) or "")
