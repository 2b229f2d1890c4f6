"""Alert routing checked by Alertmanager's own tool (amtool, Debian's
prometheus-alertmanager, installed by `make test`): the configuration rendered from
ownership.toml is valid, and every alert rule reaches the receiver of its owner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from release.ownership import alertmanager, load
from tests.unit.test_ownership import alert_rules

CONFIG = Path(__file__).parents[2] / "dashboards" / "alertmanager.yml"
AMTOOL = shutil.which("amtool")
pytestmark = pytest.mark.skipif(AMTOOL is None, reason="amtool missing: run `make test`")


def amtool(*args: str) -> str:
    done = subprocess.run(
        [str(AMTOOL), *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def test_the_checked_in_configuration_is_valid() -> None:
    assert "SUCCESS" in amtool("check-config", str(CONFIG))


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_each_alert_goes_to_its_owners_receiver(rule: dict[str, Any]) -> None:
    labels = rule["labels"]
    routed = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"alertname={rule['alert']}",
        f"owner={labels['owner']}",
        f"severity={labels['severity']}",
    )
    assert routed == f"{labels['owner']}-owner"


def test_webhooks_come_from_the_environment_when_rendered(tmp_path: Path) -> None:
    hooks = {"ALERT_WEBHOOK_COLONY": "https://hooks.example.com/velocity/colony"}
    config = tmp_path / "alertmanager.yml"
    config.write_text(alertmanager(load(), hooks))
    assert "SUCCESS" in amtool("check-config", str(config))
    assert "https://hooks.example.com/velocity/colony" in config.read_text()
    assert "http://alerts.invalid/root-owner" in config.read_text()
