"""`velocity`: the one entry point for every operator command.

Every command's one-line summary and examples live in one table, `COMMANDS`, keyed by the
command's path ("ledger verify"): the parser takes its help, description and epilog from
there, so `velocity --help`, `velocity <group> --help` and `velocity <group> <command>
--help` each say what the command does and show it in use, and a command left out of the
table fails tests/unit/infra/test_cli_help.py.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import socket
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import get_args

from infra.config import CommonSettings, S, load_settings
from infra.stack_file import infrastructure_for
from infra.structured_logs import configure_logging


def _count(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of 0 or more")
    return int(value)


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-11-24T09:30:00Z)"
        ) from error
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} needs a time zone (e.g. Z)")
    return parsed


def _stack_run(args: argparse.Namespace) -> int:
    from infra.stack import run_stack

    run_stack()
    return 0


def _operator_settings() -> tuple[CommonSettings, str, str]:
    return _settings_of(CommonSettings)


def _settings_of(kind: type[S]) -> tuple[S, str, str]:
    """The command's settings (`kind`: a process's own, where the command does its work),
    its logging, and where the broker and PostgreSQL are."""
    settings = load_settings(kind)
    configure_logging(settings.model_copy(update={"LOG_LEVEL": "WARNING"}), "cli")
    bootstrap, database_url = infrastructure_for(settings)
    return settings, bootstrap, database_url


def _verify(args: argparse.Namespace) -> int:
    from ledger.operator_cli import verify

    settings, bootstrap, database_url = _operator_settings()
    return asyncio.run(verify(settings, bootstrap, database_url, args.mission, args.archive_only))


def _replay(args: argparse.Namespace) -> int:
    from ledger.operator_cli import replay

    _, _, database_url = _operator_settings()
    return asyncio.run(replay(database_url, args.mission, args.as_of, args.json))


def _restore(args: argparse.Namespace) -> int:
    from ledger.operator_cli import restore

    settings, bootstrap, database_url = _operator_settings()
    return asyncio.run(restore(settings, bootstrap, database_url))


def _rebuild(args: argparse.Namespace) -> int:
    from projections.rebuild import RebuildError, choose, rebuild_from_cli

    try:
        chosen = choose(args.name)
    except RebuildError as error:
        print(f"velocity: {error}", file=sys.stderr)
        return 2
    settings, bootstrap, database_url = _operator_settings()
    return asyncio.run(rebuild_from_cli(settings, bootstrap, database_url, chosen))


def _who() -> str:
    """Who runs this command, for the audit of evictions and re-drives."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _parked(args: argparse.Namespace) -> int:
    from projections.operator_cli import parked

    _, _, database_url = _operator_settings()
    return asyncio.run(parked(database_url, args.name, args.json))


def _retry(args: argparse.Namespace) -> int:
    from projections.operator_cli import UnknownProjectionError, find, retry_parked
    from projections.settings import ProjectorSettings

    settings, _, database_url = _settings_of(ProjectorSettings)
    try:
        if args.name:
            find(args.name, settings)
    except UnknownProjectionError as error:
        print(f"velocity: {error}", file=sys.stderr)
        return 2
    return asyncio.run(retry_parked(settings, database_url, args.name, args.mission))


def _evict(args: argparse.Namespace) -> int:
    from projections.operator_cli import UnknownProjectionError, evict, find
    from projections.settings import ProjectorSettings

    settings, _, database_url = _settings_of(ProjectorSettings)
    try:
        find(args.name, settings)
    except UnknownProjectionError as error:
        print(f"velocity: {error}", file=sys.stderr)
        return 2
    return asyncio.run(
        evict(settings, database_url, args.name, args.mission, args.operator, args.reason)
    )


def _letters(args: argparse.Namespace) -> int:
    from ledger.redrive import list_letters

    _, _, database_url = _operator_settings()
    return asyncio.run(list_letters(database_url, args.all, args.reason, args.json, args.limit))


def _redrive(args: argparse.Namespace) -> int:
    from ledger.redrive import redrive

    settings, bootstrap, database_url = _operator_settings()
    return asyncio.run(
        redrive(settings, bootstrap, database_url, args.id, args.operator, args.reason, args.again)
    )


def _dismiss(args: argparse.Namespace) -> int:
    from ledger.redrive import dismiss
    from ledger.wire import DeadLetterReason

    reasons = get_args(DeadLetterReason)
    if not args.ids and args.every is None:
        print("velocity: name letter ids or --every REASON", file=sys.stderr)
        return 2
    if args.every is not None and args.every not in reasons:
        print(
            f"velocity: --every: no reason {args.every!r}; one of {', '.join(reasons)}",
            file=sys.stderr,
        )
        return 2
    _, _, database_url = _operator_settings()
    return asyncio.run(dismiss(database_url, args.ids, args.every, args.operator, args.reason))


def _operator_key(args: argparse.Namespace) -> int:
    from ledger.authority import new_key_pair

    signing, verify = new_key_pair(args.key_id)
    print(f"# the root only (a secret):\nOPERATOR_SIGNING_KEY={signing}")
    print(f"OPERATOR_SIGNING_KEY_ID={args.key_id}")
    print("# every decider (public; keep the old entry while rotating):")
    print(f"OPERATOR_VERIFY_KEYS={verify}")
    return 0


def _ownership_render(args: argparse.Namespace) -> int:
    from release.ownership import render_files

    stale = render_files(check=args.check)
    verb = "stale" if args.check else "written"
    for path in stale:
        print(f"{path}: {verb}")
    if not stale:
        print("generated files match ownership.toml")
    return 1 if args.check and stale else 0


def _ownership_alertmanager(args: argparse.Namespace) -> int:
    import os

    from release.ownership import alertmanager, load

    print(alertmanager(load(), os.environ), end="")
    return 0


def _reason(value: str) -> str:
    if not value.strip() or "\x00" in value:
        raise argparse.ArgumentTypeError("a reason is required (plain text)")
    return value.strip()


@dataclass(frozen=True)
class Command:
    """What a command's help says: the line its parent lists, the examples its --help shows.

    A group's examples default to the first example of each of its commands, so only
    leaves (and the top level) need their own.
    """

    summary: str
    examples: tuple[str, ...] = ()


MISSION = "6f1c2a9e-4b7d-4c1e-9a53-2d8e7f0b1c44"
GATE_RUN = "0b7e5d2c-91a4-4f3e-8c6d-5a2f1e9b7c30"
STAGING = "https://root.staging.example"
PRODUCTION = "https://root.example"
ENVIRONMENTS = ["local", "staging", "production"]

COMMANDS: dict[str, Command] = {
    "": Command(
        "the operator CLI of the Velocity colony ledger: run, audit, repair and release it",
        (
            "velocity stack run",
            f"velocity ledger replay --mission {MISSION} --as-of 2026-11-24T09:30:00Z",
            "velocity gates run --env local --root http://127.0.0.1:8000",
        ),
    ),
    "stack": Command("run the local stack"),
    "stack run": Command(
        "run the broker, database, services and root API locally",
        ("velocity stack run", "STACK_REPLICAS=2 velocity stack run"),
    ),
    "ledger": Command("audit the ledger: its chains, a mission's history, the archive"),
    "ledger verify": Command(
        "check every chain for gaps and broken hashes",
        ("velocity ledger verify", f"velocity ledger verify --mission {MISSION} --archive-only"),
    ),
    "ledger replay": Command(
        "show a mission's history and its state as of a time",
        (
            f"velocity ledger replay --mission {MISSION} --as-of 2026-11-24T09:30:00Z",
            f"velocity ledger replay --mission {MISSION} --json",
        ),
    ),
    "ledger restore": Command(
        "republish archived events the broker lacks", ("velocity ledger restore",)
    ),
    "projections": Command("repair the PostgreSQL views (projections)"),
    "projections rebuild": Command(
        "empty views and replay the log into them",
        ("velocity projections rebuild missions", "velocity projections rebuild"),
    ),
    "projections parked": Command(
        "list events the views could not apply", ("velocity projections parked approvals --json",)
    ),
    "projections retry": Command(
        "apply parked events again, in order",
        (f"velocity projections retry tasks --mission {MISSION}",),
    ),
    "projections evict": Command(
        "drop a mission's first parked event from a view",
        (
            f"velocity projections evict evidence --mission {MISSION}"
            ' --reason "forged event, incident 412"',
        ),
    ),
    "ownership": Command("who owns what, rendered from ownership.toml"),
    "ownership render": Command(
        "write the files generated from ownership.toml",
        ("velocity ownership render", "velocity ownership render --check"),
    ),
    "ownership alertmanager": Command(
        "print the Alertmanager config, webhooks from ALERT_WEBHOOK_*",
        ("velocity ownership alertmanager > alertmanager.yml",),
    ),
    "deadletters": Command("records set aside: list them, send commands again, dismiss them"),
    "deadletters list": Command(
        "list dead letters not yet re-driven",
        (
            "velocity deadletters list",
            "velocity deadletters list --reason wrong_partition --json",
            "velocity deadletters list --all --limit 0",
        ),
    ),
    "deadletters redrive": Command(
        "send a dead-lettered command again",
        ('velocity deadletters redrive 3f9a0c2e7b1d4a65 --reason "partition map fixed"',),
    ),
    "deadletters dismiss": Command(
        "mark letters looked at and not to be sent again (kept, no longer waiting)",
        (
            'velocity deadletters dismiss 3f9a0c2e7b1d4a65 --reason "a forged record"',
            'velocity deadletters dismiss --every history_full --reason "flood by a test agent"',
        ),
    ),
    "keys": Command("make key material"),
    "keys operator": Command(
        "print a new operator signing key pair",
        ("velocity keys operator --key-id op-2 > op-2.env",),
    ),
    "gates": Command("release gates: run them, export a run's signed report"),
    "gates run": Command(
        "run gates 1-4 against a running root, recorded in its ledger",
        (f"velocity gates run --env staging --root {STAGING}",),
    ),
    "gates export": Command(
        "export a completed gate run's signed report",
        (f"velocity gates export {GATE_RUN} --env staging --root {STAGING} --out report.json",),
    ),
    "rollout": Command(
        "show or move this environment's rollout step",
        (
            f"velocity rollout show --env staging --root {STAGING}",
            f"velocity rollout advance --env production --root {PRODUCTION} --to 4"
            f' --reason "gates run {GATE_RUN}" --evidence report.json',
        ),
    ),
}


def _sentence(summary: str) -> str:
    """A summary as the one-line description atop a command's own --help."""
    return f"{summary[0].upper()}{summary[1:]}."


def _below(path: str) -> list[str]:
    """The commands under `path` (all of them for the top level), in the table's order."""
    return [other for other in COMMANDS if other.startswith(f"{path} ") or (other and not path)]


def _leaves() -> list[str]:
    """The commands that run something: those nothing else sits under."""
    return [path for path in _below("") if not _below(path)]


def _examples(path: str) -> tuple[str, ...]:
    """Its own examples, or else its commands' first ones (a group shows what it holds)."""
    own = COMMANDS[path].examples
    below = [leaf for leaf in _leaves() if leaf in _below(path)]
    return own or tuple(example for leaf in below for example in COMMANDS[leaf].examples[:1])


def _overview() -> str:
    """Every command with its summary, for `velocity --help`: the whole CLI at a glance."""
    leaves = _leaves()
    width = max(len(leaf) for leaf in leaves) + 2
    lines = [f"  {leaf:<{width}}{COMMANDS[leaf].summary}" for leaf in leaves]
    return "\n".join(
        ["Commands (velocity <group> <command> --help: its arguments and examples):", *lines]
    )


def _epilog(path: str) -> str:
    """The Example(s) section, after the command overview at the top level."""
    examples = _examples(path)
    heading = "Example:" if len(examples) == 1 else "Examples:"
    section = "\n".join([heading, *(f"  {example}" for example in examples)])
    return f"{_overview()}\n\n{section}" if not path else section


def _command(
    parent: argparse._SubParsersAction[argparse.ArgumentParser], path: str
) -> argparse.ArgumentParser:
    """The parser for `path`, with its summary, description and examples from COMMANDS."""
    summary = COMMANDS[path].summary
    return parent.add_parser(
        path.split()[-1],
        help=summary,
        description=_sentence(summary),
        epilog=_epilog(path),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _group(
    parent: argparse._SubParsersAction[argparse.ArgumentParser], path: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """A group of commands (`velocity ledger ...`): one of them must be named."""
    return _command(parent, path).add_subparsers(required=True)


def _release_target(parser: argparse.ArgumentParser, env_required: bool) -> None:
    """--env and --root: which root a release command talks to, with which keys."""
    parser.add_argument(
        "--env",
        required=env_required,
        default=None if env_required else "local",
        choices=ENVIRONMENTS,
        help="the root's environment; keys from GATES_*_KEY unless local"
        + ("" if env_required else " (default: %(default)s)"),
    )
    parser.add_argument("--root", required=True, help="the root's URL, e.g. http://127.0.0.1:8000")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="velocity",
        description=_sentence(COMMANDS[""].summary),
        epilog=_epilog(""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    groups = parser.add_subparsers(dest="group", required=True)

    stack = _group(groups, "stack")
    _command(stack, "stack run").set_defaults(handler=_stack_run)

    ledger = _group(groups, "ledger")
    verify = _command(ledger, "ledger verify")
    verify.add_argument("--mission", help="only this mission")
    verify.add_argument(
        "--archive-only", action="store_true", help="skip the comparison with the topic"
    )
    verify.set_defaults(handler=_verify)
    replay = _command(ledger, "ledger replay")
    replay.add_argument("--mission", required=True, help="the mission id")
    replay.add_argument("--as-of", type=_timestamp, help="ISO 8601 time with zone")
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    replay.set_defaults(handler=_replay)
    _command(ledger, "ledger restore").set_defaults(handler=_restore)

    views = _group(groups, "projections")
    rebuild = _command(views, "projections rebuild")
    rebuild.add_argument("name", nargs="?", help="missions, approvals, tasks or evidence")
    rebuild.set_defaults(handler=_rebuild)
    parked = _command(views, "projections parked")
    parked.add_argument("name", nargs="?", help="only this projection")
    parked.add_argument("--json", action="store_true", help="machine-readable output")
    parked.set_defaults(handler=_parked)
    retry = _command(views, "projections retry")
    retry.add_argument("name", nargs="?", help="only this projection")
    retry.add_argument("--mission", help="only this mission")
    retry.set_defaults(handler=_retry)
    evict = _command(views, "projections evict")
    evict.add_argument("name", help="the projection")
    evict.add_argument("--mission", required=True, help="the mission id")
    evict.add_argument("--reason", required=True, type=_reason, help="recorded with the eviction")
    evict.add_argument("--operator", default=_who(), help="recorded as who evicted")
    evict.set_defaults(handler=_evict)

    owned = _group(groups, "ownership")
    render = _command(owned, "ownership render")
    render.add_argument("--check", action="store_true", help="only say which are stale (exit 1)")
    render.set_defaults(handler=_ownership_render)
    _command(owned, "ownership alertmanager").set_defaults(handler=_ownership_alertmanager)

    letters = _group(groups, "deadletters")
    listing = _command(letters, "deadletters list")
    listing.add_argument("--all", action="store_true", help="re-driven ones too")
    listing.add_argument("--reason", help="only this reason, e.g. wrong_partition")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument(
        "--limit", type=_count, default=100, help="the oldest this many (default 100; 0: all)"
    )
    listing.set_defaults(handler=_letters)
    again = _command(letters, "deadletters redrive")
    again.add_argument("id", help="the letter id `velocity deadletters list` shows")
    again.add_argument("--reason", type=_reason, default="cause fixed", help="recorded")
    again.add_argument("--operator", default=_who(), help="recorded as who re-drove it")
    again.add_argument("--again", action="store_true", help="even if re-driven before")
    again.set_defaults(handler=_redrive)
    dismissal = _command(letters, "deadletters dismiss")
    dismissal.add_argument("ids", nargs="*", help="letter ids `velocity deadletters list` shows")
    dismissal.add_argument(
        "--every", metavar="REASON", help="every waiting letter of this reason, e.g. history_full"
    )
    dismissal.add_argument("--reason", type=_reason, required=True, help="recorded: why")
    dismissal.add_argument("--operator", default=_who(), help="recorded as who dismissed them")
    dismissal.set_defaults(handler=_dismiss)

    keys = _group(groups, "keys")
    operator = _command(keys, "keys operator")
    operator.add_argument(
        "--key-id",
        default="op-1",
        type=_key_id,
        help="the id signatures name the key by (default: %(default)s)",
    )
    operator.set_defaults(handler=_operator_key)

    gates = _group(groups, "gates")
    run = _command(gates, "gates run")
    _release_target(run, env_required=True)
    run.set_defaults(handler=_gates_run)
    export = _command(gates, "gates export")
    export.add_argument("run_id", help="the gate run's id, as `velocity gates run` printed it")
    _release_target(export, env_required=False)
    export.add_argument("--out", required=True, type=Path, help="the file to write the report to")
    export.set_defaults(handler=_gates_export)

    rollout = _command(groups, "rollout")
    rollout.add_argument(
        "action",
        choices=["show", "advance", "rollback"],
        help="show the step, or move it (needs --to and --reason)",
    )
    _release_target(rollout, env_required=False)
    rollout.add_argument(
        "--to", type=int, choices=range(1, 7), metavar="STEP", help="the step to move to, 1-6"
    )
    rollout.add_argument("--reason", type=_reason, help="recorded with the change")
    rollout.add_argument(
        "--evidence", type=Path, help="a signed gate report (velocity gates export)"
    )
    rollout.set_defaults(handler=_rollout)
    return parser


def _gates_run(args: argparse.Namespace) -> int:
    from release.operator_cli import gates_run

    return gates_run(args.root, args.env)


def _gates_export(args: argparse.Namespace) -> int:
    from release.operator_cli import gates_export

    return gates_export(args.root, args.env, args.run_id, args.out)


def _rollout(args: argparse.Namespace) -> int:
    from release.operator_cli import rollout_change, rollout_show

    if args.action == "show":
        return rollout_show(args.root, args.env)
    if args.to is None or not args.reason:
        print(f"velocity: rollout {args.action} needs --to and --reason", file=sys.stderr)
        return 2
    return rollout_change(args.root, args.env, args.action, args.to, args.reason, args.evidence)


def _key_id(value: str) -> str:
    from ledger.authority import NAME_PATTERN

    if not re.match(NAME_PATTERN, value):
        raise argparse.ArgumentTypeError("letters, digits and ._@- only")
    return value


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.handler(args))


if __name__ == "__main__":
    main()
