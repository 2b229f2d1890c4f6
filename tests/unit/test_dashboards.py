"""Dashboards and alert rules only use metrics the root and the colony actually export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from colony_consumers.service import AdmissionLevels
from gateway.routers.metrics import REGISTRY

DASHBOARDS = Path(__file__).parents[2] / "dashboards"
METRIC = re.compile(r"\bvelocity_[a-z_]+")


def exported() -> set[str]:
    """What the root's and a colony process's /metrics export."""
    names = set()
    colony = AdmissionLevels(lambda: {"breakers": {"model": {"state": "open"}}})
    for family in [*REGISTRY.collect(), *colony.collect()]:
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    names.update(f"{n}_total" for n in list(names))
    return names


@pytest.mark.parametrize(
    "name", ["mission_health", "policy_blocks", "provider_health", "approval_backlog"]
)
def test_each_spec_dashboard_exists_and_queries_exported_metrics(name: str) -> None:
    board = json.loads((DASHBOARDS / f"{name}.json").read_text())
    queries = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    used = {m for q in queries for m in METRIC.findall(q)}
    assert used and used <= exported() | {f"{m}_bucket" for m in exported()}


def test_alert_rules_use_exported_metrics() -> None:
    used = set(METRIC.findall((DASHBOARDS / "prometheus_rules.yml").read_text()))
    assert used and used <= exported()
