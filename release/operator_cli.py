"""`velocity gates run|export` and `velocity rollout show|advance|rollback`: release
readiness from an operator's terminal, against a running root over HTTP.

Keys come from GATES_SERVICE_KEY, GATES_OPERATOR_KEY and GATES_AUDITOR_KEY (the local
stack's public keys when --env local). Each command returns a process exit code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.canonical_json import canonical_json
from release.gates import GateKeys, run_gates

LOCAL_KEYS = GateKeys("local-service-key", "local-operator-key", "local-auditor-key")


class GatesSettings(BaseSettings):
    """The keys the release commands use (read once, at start)."""

    model_config = SettingsConfigDict(extra="ignore")

    GATES_SERVICE_KEY: SecretStr | None = None
    GATES_OPERATOR_KEY: SecretStr | None = None
    GATES_AUDITOR_KEY: SecretStr | None = None

    def keys(self, environment: str) -> GateKeys:
        """The configured keys; the local stack's for anything unset with --env local."""
        given = {
            "service": self.GATES_SERVICE_KEY,
            "operator": self.GATES_OPERATOR_KEY,
            "auditor": self.GATES_AUDITOR_KEY,
        }
        missing = [f"GATES_{role.upper()}_KEY" for role, key in given.items() if key is None]
        if missing and environment != "local":
            raise SystemExit(f"velocity: set {', '.join(missing)} for --env {environment}")
        return GateKeys(
            **{
                role: key.get_secret_value() if key else getattr(LOCAL_KEYS, role)
                for role, key in given.items()
            }
        )


def _say(message: str) -> None:
    print(message, flush=True)  # noqa: T201


def _fail(message: str) -> int:
    print(f"velocity: {message}", file=sys.stderr)  # noqa: T201
    return 1


def gates_run(root: str, environment: str) -> int:
    keys = GatesSettings().keys(environment)
    version = package_version("velocity-colony-ledger")
    try:
        return asyncio.run(run_gates(root, environment, keys, version, _say))
    except httpx.HTTPError as error:
        return _fail(f"cannot reach the root at {root}: {type(error).__name__}")


def gates_export(root: str, environment: str, run_id: str, out: Path) -> int:
    """Write the root's signed report of `run_id` to `out`: production's evidence."""
    keys = GatesSettings().keys(environment)
    answer = _request("GET", root, f"/releases/gates/{run_id}/report", keys.auditor)
    if answer is None:
        return _fail(f"cannot reach the root at {root}")
    if answer.status_code != 200:
        return _fail(f"the root answered {answer.status_code}: {_detail(answer)}")
    signed = answer.json()
    out.write_text(json.dumps(signed, indent=2, sort_keys=True) + "\n")
    digest = hashlib.sha256(canonical_json(signed)).hexdigest()
    passed = signed["document"].get("passed")
    _say(
        f"wrote {out}: gate run {run_id} ({'passed' if passed else 'NOT passed'}), sha256 {digest}"
    )
    return 0 if passed else 1


def rollout_show(root: str, environment: str) -> int:
    keys = GatesSettings().keys(environment)
    answer = _request("GET", root, "/releases/rollout", keys.auditor)
    return _print_rollout(answer, root)


def rollout_change(
    root: str, environment: str, action: str, to_step: int, reason: str, evidence: Path | None
) -> int:
    """Advance or roll back the root's environment; evidence is a signed report file."""
    keys = GatesSettings().keys(environment)
    body: dict[str, Any] = {"to_step": to_step, "reason": reason}
    if evidence is not None:
        try:
            body["evidence"] = json.loads(evidence.read_text())
        except (OSError, ValueError) as error:
            return _fail(f"--evidence {evidence}: {error}")
    answer = _request("POST", root, f"/releases/rollout/{action}", keys.operator, body)
    return _print_rollout(answer, root)


def _print_rollout(answer: httpx.Response | None, root: str) -> int:
    if answer is None:
        return _fail(f"cannot reach the root at {root}")
    if answer.status_code != 200:
        return _fail(f"the root answered {answer.status_code}: {_detail(answer)}")
    state = answer.json()
    _say(
        f"{state['environment']}: step {state['effective_step']} (ledger {state['ledger_step']},"
        f" VELOCITY_ROLLOUT_STEP {state['upper_bound']})"
    )
    for change in state["history"][:10]:
        evidence = f" evidence {change['evidence_hash'][:16]}" if change["evidence_hash"] else ""
        _say(
            f"  {change['changed_at']}  {change['environment']} {change['from_step']}→"
            f"{change['to_step']} by {change['changed_by']}: {change['reason']}{evidence}"
        )
    return 0


def _request(
    method: str, root: str, path: str, key: str, body: dict[str, Any] | None = None
) -> httpx.Response | None:
    try:
        return httpx.request(
            method,
            root.rstrip("/") + path,
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
    except httpx.HTTPError:
        return None


def _detail(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("detail", answer.text[:300]))
    except ValueError:
        return answer.text[:300]
