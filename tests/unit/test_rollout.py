"""Rollout rules per environment and step (spec section 8)."""

from __future__ import annotations

import pytest

from gateway.rollout import refusal


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
