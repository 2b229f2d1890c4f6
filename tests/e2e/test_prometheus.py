"""A real Prometheus (Debian's package) against the running stack: the alert rules load and
pass their unit tests, both services' /metrics pass `promtool check metrics`, every
dashboard query parses and names exported series, and the approval-backlog alert fires
on a real mission waiting for an operator (its threshold shortened for the test)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.processes import free_port
from tests.e2e.conftest import RunningStack, until
from tests.e2e.test_colony import CRM, status_is

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]
RULES = ROOT / "dashboards" / "prometheus_rules.yml"
BACKLOG = "max(velocity_approval_queue_oldest_age_seconds) > 3600\n        for: 10m"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    assert executable, "Debian's prometheus package is missing: `make test` installs it"
    return subprocess.run(
        [executable, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_alert_rules_load_and_pass_a_unit_test_per_alert() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(ROOT / "tests" / "prometheus" / "rules_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {
        line.split(":", 1)[1].strip()
        for line in RULES.read_text().splitlines()
        if line.strip().startswith("- alert:")
    }
    covered = (ROOT / "tests" / "prometheus" / "rules_test.yml").read_text()
    assert all(f"alertname: {alert}" in covered for alert in alerts), "every alert is tested"


def test_both_services_metrics_pass_promtool(colony_stack: RunningStack) -> None:
    for url in (colony_stack.root_url, colony_stack.colony_url):
        text = httpx.get(f"{url}/metrics", timeout=10).text
        linted = promtool("check", "metrics", stdin=text)
        assert linted.returncode == 0 and not linted.stdout.strip(), (url, linted.stdout)


@pytest.fixture
async def prometheus(colony_stack: RunningStack, tmp_path: Path) -> AsyncIterator[str]:
    """Prometheus scraping the stack every second, with the backlog alert at one second."""
    rules = RULES.read_text()
    assert BACKLOG in rules, "the backlog rule this test shortens"
    shortened = tmp_path / "rules.yml"
    shortened.write_text(
        rules.replace(
            BACKLOG, "max(velocity_approval_queue_oldest_age_seconds) > 1\n        for: 1s"
        )
    )
    targets = {
        "root": colony_stack.root_url.removeprefix("http://"),
        "colony": colony_stack.colony_url.removeprefix("http://"),
    }
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(shortened)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))
    port = free_port()
    executable = shutil.which("prometheus")
    assert executable, "Debian's prometheus package is missing: `make test` installs it"
    log = await asyncio.to_thread((tmp_path / "prometheus.log").open, "w")
    process = await asyncio.create_subprocess_exec(
        executable,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await until(lambda: _answers(f"{url}/-/ready"), 30)
        yield url
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
        log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _api(url: str, path: str, **params: str) -> Any:
    answer = httpx.get(f"{url}/api/v1/{path}", params=params, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]


async def test_prometheus_scrapes_both_services_and_the_backlog_alert_fires(
    colony_stack: RunningStack, prometheus: str
) -> None:
    with colony_stack.client() as client:
        mission_id = client.post("/missions", json=CRM).json()["mission_id"]
        await until(lambda: status_is(client, mission_id, "awaiting_approval"), 60)

    def firing() -> list[dict[str, Any]]:
        alerts = _api(prometheus, "alerts")["alerts"]
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == "VelocityApprovalBacklog" and a["state"] == "firing"
        ]

    fired = await until(firing, 60)
    assert fired[0]["labels"]["severity"] == "warning"
    targets = _api(prometheus, "targets")["activeTargets"]
    assert sorted((t["labels"]["job"], t["health"]) for t in targets) == [
        ("colony", "up"),
        ("root", "up"),
    ]
    active = _api(prometheus, "query", query='velocity_missions_active{status="awaiting_approval"}')
    assert active["result"], "the level the approval dashboard charts"


async def test_every_dashboard_query_parses_in_prometheus(prometheus: str) -> None:
    for board in sorted((ROOT / "dashboards").glob("*.json")):
        for panel in json.loads(board.read_text())["panels"]:
            for target in panel["targets"]:
                _api(prometheus, "query", query=target["expr"])
