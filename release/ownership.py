"""Who owns what (seed section 10), read from ownership.toml; what is generated from it.

Pure: load the file into `Ownership`, ask who owns a route, alert, runbook, topic, metric
or rollout step, and render CODEOWNERS, docs/ownership.md and the Alertmanager routing.
The generated files are checked in and a test keeps them equal to what this renders, so
the TOML stays the one place an owner changes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

OWNERSHIP_FILE = Path(__file__).resolve().parents[1] / "ownership.toml"
Kind = Literal["paths", "routes", "topics", "metrics", "alerts", "runbooks", "rollout"]
KINDS: tuple[Kind, ...] = ("paths", "routes", "topics", "metrics", "alerts", "runbooks", "rollout")
WEBHOOK_VARIABLE = "ALERT_WEBHOOK_{}"
"""Environment variable holding an owner's alert webhook URL (e.g. ALERT_WEBHOOK_ROOT)."""


class Owner(BaseModel):
    """One owner: a team, its responsibility, and what it answers for."""

    model_config = ConfigDict(extra="forbid")

    title: str
    responsibility: str
    team: str = Field(pattern=r"^@[\w.-]+(/[\w.-]+)?$")
    paths: list[str]
    routes: list[str]
    topics: list[str]
    metrics: list[str]
    alerts: list[str]
    runbooks: list[str]
    rollout: list[str]


class Ownership(BaseModel):
    """Every owner by its key (root, colony, policy, product)."""

    model_config = ConfigDict(extra="forbid")

    owners: dict[str, Owner]

    def owners_of(self, kind: Kind, name: str) -> list[str]:
        """The owners whose `kind` entries name `name` (one, when the file is right)."""
        return [key for key, owner in self.owners.items() if _matches(getattr(owner, kind), name)]

    def unowned(self, kind: Kind, names: Iterable[str]) -> dict[str, list[str]]:
        """Each name of `names` without exactly one owner, with the owners it has."""
        found = {name: self.owners_of(kind, name) for name in names}
        return {name: owners for name, owners in found.items() if len(owners) != 1}


def _matches(patterns: list[str], name: str) -> bool:
    return any(
        name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern
        for pattern in patterns
    )


def load(path: Path = OWNERSHIP_FILE) -> Ownership:
    """The ownership file, validated (a ValueError names what is wrong)."""
    return Ownership.model_validate(tomllib.loads(path.read_text()))


def codeowners(ownership: Ownership) -> str:
    """.github/CODEOWNERS: the root owner by default, then every owner's paths, broader
    paths first so the more specific line (which GitHub applies) comes last."""
    lines = [
        "# Generated from ownership.toml by `velocity ownership render`; edit that file.",
        f"* {ownership.owners['root'].team}",
    ]
    entries = [(path, owner.team) for owner in ownership.owners.values() for path in owner.paths]
    for path, team in sorted(entries):  # a folder sorts before the paths inside it
        lines.append(f"/{path} {team}")
    return "\n".join(lines) + "\n"


def markdown(ownership: Ownership) -> str:
    """docs/ownership.md: each owner, what they own, and where their alerts go."""
    out = [
        "# Ownership",
        "",
        "Generated from `ownership.toml` by `velocity ownership render`; edit that file. Seed",
        "section 10 splits operations between four owners; `.github/CODEOWNERS`, the alerts'",
        "`owner` label and the Alertmanager routes (`dashboards/alertmanager.yml`) follow it.",
        "",
    ]
    for key, owner in ownership.owners.items():
        out += [
            f"## {owner.title} (`{key}`)",
            "",
            f"{owner.responsibility.capitalize()}. Team {owner.team}; alerts labelled",
            f"`owner={key}` go to receiver `{key}-owner` (webhook `{_variable(key)}`).",
            "",
        ]
        for kind in KINDS:
            entries = getattr(owner, kind)
            if entries:
                out.append(f"- **{kind}**: " + ", ".join(_cell(kind, e) for e in entries))
        out.append("")
    return "\n".join(out)


def _cell(kind: Kind, entry: str) -> str:
    if kind == "runbooks":
        return f"[{entry}](runbooks.md#{anchor(entry)})"
    return f"`{entry}`"


def anchor(title: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def _variable(owner: str) -> str:
    return WEBHOOK_VARIABLE.format(owner.upper())


def alertmanager(ownership: Ownership, environ: Mapping[str, str]) -> str:
    """The Alertmanager configuration: each owner's alerts (label `owner`) to that owner's
    webhook, from ALERT_WEBHOOK_<OWNER> (a placeholder URL when unset)."""
    receivers = [
        {
            "name": f"{key}-owner",
            "webhook_configs": [
                {
                    "url": environ.get(_variable(key), f"http://alerts.invalid/{key}-owner"),
                    "send_resolved": True,
                }
            ],
        }
        for key in ownership.owners
    ]
    routes = [
        {"matchers": [f'owner="{key}"'], "receiver": f"{key}-owner"} for key in ownership.owners
    ]
    config = {
        "route": {
            "receiver": "root-owner",
            "group_by": ["alertname", "owner"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "receivers": receivers,
    }
    header = (
        "# Generated from ownership.toml by `velocity ownership render`; edit that file.\n"
        "# Webhook URLs: ALERT_WEBHOOK_<OWNER> when rendered (placeholders here). An alert\n"
        "# without an owner label, which tests forbid, would reach the root owner.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)


GENERATED: dict[str, Callable[[Ownership], str]] = {
    ".github/CODEOWNERS": codeowners,
    "docs/ownership.md": markdown,
    "dashboards/alertmanager.yml": lambda ownership: alertmanager(ownership, {}),
}
"""Files generated from ownership.toml (alert webhooks as placeholders), by path."""


def render_files(repository: Path = OWNERSHIP_FILE.parent, check: bool = False) -> list[str]:
    """Write (or with `check`, only compare) the generated files; the stale ones' paths."""
    ownership = load(repository / OWNERSHIP_FILE.name)
    stale = []
    for relative, render in GENERATED.items():
        path = repository / relative
        text = render(ownership)
        if not path.exists() or path.read_text() != text:
            stale.append(relative)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    return stale
