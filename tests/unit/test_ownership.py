"""Ownership (ownership.toml): everything an on-call engineer can be paged for or asked
about has exactly one owner, alerts carry it, runbooks name it, and the generated
CODEOWNERS, docs/ownership.md and Alertmanager routes say the same as the file."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.routing import BaseRoute

from gateway.app import create_app
from gateway.settings import RootSettings
from infra.topics import ALL_TOPICS
from release.ownership import alertmanager, anchor, codeowners, load, markdown
from tests.unit.test_dashboards import exported

ROOT = Path(__file__).parents[2]
RULES = ROOT / "dashboards" / "prometheus_rules.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
SEVERITIES = {"critical", "warning", "info"}
OWNERSHIP = load()


def route_paths(routes: Iterable[BaseRoute]) -> Iterator[str]:
    """Every path the app answers, through included routers (any FastAPI version)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from route_paths(included.routes)
        else:
            yield str(getattr(route, "path", ""))


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def runbook_sections() -> dict[str, str]:
    """docs/runbooks.md's runbooks (every `## ` section but the drills table): title -> text."""
    parts = re.split(r"^## ", RUNBOOKS.read_text(), flags=re.MULTILINE)[1:]
    sections = {part.split("\n", 1)[0].strip(): part for part in parts}
    return {title: text for title, text in sections.items() if title != "Drills"}


def test_every_route_of_the_root_has_one_owner() -> None:
    paths = set(route_paths(create_app(RootSettings()).routes))
    assert {"/missions", "/approvals", "/mcp", "/releases/gates", "/auth/whoami"} <= paths
    assert OWNERSHIP.unowned("routes", paths) == {}


def test_every_alert_has_one_owner_who_is_its_label_a_severity_and_a_runbook() -> None:
    rules = alert_rules()
    assert OWNERSHIP.unowned("alerts", [rule["alert"] for rule in rules]) == {}
    sections = {anchor(title) for title in runbook_sections()}
    for rule in rules:
        [owner] = OWNERSHIP.owners_of("alerts", rule["alert"])
        assert rule["labels"]["owner"] == owner, rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        path, _, section = rule["annotations"]["runbook_url"].partition("#")
        assert path == "docs/runbooks.md" and section in sections, rule["alert"]


def test_every_runbook_has_one_owner_and_names_it() -> None:
    sections = runbook_sections()
    assert OWNERSHIP.unowned("runbooks", sections) == {}
    for title, text in sections.items():
        [owner] = OWNERSHIP.owners_of("runbooks", title)
        named = OWNERSHIP.owners[owner]
        assert f"Owner: {named.title} (`{owner}`)" in text, title


def test_every_topic_metric_family_and_rollout_step_has_one_owner() -> None:
    families = {name for name in exported() if not name.endswith(("_created", "_sum", "_count"))}
    assert OWNERSHIP.unowned("topics", [spec.name for spec in ALL_TOPICS]) == {}
    assert OWNERSHIP.unowned("metrics", families) == {}
    steps = [step for owner in OWNERSHIP.owners.values() for step in owner.rollout]
    assert [int(step.split()[0]) for step in steps] == list(range(1, 7))
    assert set(OWNERSHIP.owners) == {"root", "colony", "policy", "product"}


def test_every_owned_path_exists() -> None:
    missing = [
        path for owner in OWNERSHIP.owners.values() for path in owner.paths
        if not (ROOT / path).exists()
    ]  # fmt: skip
    assert missing == []


@pytest.mark.parametrize(
    ("generated", "render"),
    [
        (".github/CODEOWNERS", codeowners),
        ("docs/ownership.md", markdown),
        ("dashboards/alertmanager.yml", lambda ownership: alertmanager(ownership, {})),
    ],
)
def test_generated_files_say_what_ownership_toml_says(generated: str, render: Any) -> None:
    assert (ROOT / generated).read_text() == render(OWNERSHIP), (
        f"{generated} is stale: run `velocity ownership render`"
    )


def test_an_owner_entry_matches_by_prefix_only_with_a_star() -> None:
    assert OWNERSHIP.owners_of("routes", "/missions/m-1/events") == ["root"]
    assert OWNERSHIP.owners_of("routes", "/releases/gates") == ["product"]
    assert OWNERSHIP.owners_of("routes", "/mcp/other") == []
    assert OWNERSHIP.owners_of("alerts", "VelocityProviderFailing") == ["policy"]
