"""`velocity`: the one entry point for every operator command.

velocity stack run                               the whole local stack
velocity ledger verify [--mission ID] [--archive-only]
velocity ledger replay --mission ID [--as-of TIME] [--json]
velocity ledger restore                          republish the archive into the broker
velocity projections rebuild [NAME]              replay the log into emptied views
velocity projections parked [NAME] [--json]      events the views could not apply
velocity projections retry [NAME] [--mission ID] apply parked events again
velocity projections evict NAME --mission ID --reason TEXT
velocity deadletters list [--all] [--reason R] [--json]
velocity deadletters redrive ID [--reason TEXT] [--again]
velocity keys operator [--key-id ID]             a new operator signing key pair
velocity gates run --env ENV --root URL          release gates 1-4, recorded in the ledger
velocity gates export RUN_ID --root URL --out F  a gate run's signed report (evidence)
velocity rollout show|advance|rollback --root URL [--to N --reason TEXT --evidence F]
velocity ownership render [--check]              CODEOWNERS, docs/ownership.md, alert routes
velocity ownership alertmanager                  Alertmanager config with ALERT_WEBHOOK_* set
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import socket
import sys
from datetime import datetime
from pathlib import Path

from infra.config import CommonSettings, load_settings
from infra.stack_file import infrastructure_for
from infra.structured_logs import configure_logging


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
    settings = load_settings(CommonSettings)
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

    try:
        if args.name:
            find(args.name)
    except UnknownProjectionError as error:
        print(f"velocity: {error}", file=sys.stderr)
        return 2
    settings, _, database_url = _operator_settings()
    return asyncio.run(retry_parked(settings, database_url, args.name, args.mission))


def _evict(args: argparse.Namespace) -> int:
    from projections.operator_cli import UnknownProjectionError, evict, find

    try:
        find(args.name)
    except UnknownProjectionError as error:
        print(f"velocity: {error}", file=sys.stderr)
        return 2
    settings, _, database_url = _operator_settings()
    return asyncio.run(
        evict(settings, database_url, args.name, args.mission, args.operator, args.reason)
    )


def _letters(args: argparse.Namespace) -> int:
    from ledger.redrive import list_letters

    _, _, database_url = _operator_settings()
    return asyncio.run(list_letters(database_url, args.all, args.reason, args.json))


def _redrive(args: argparse.Namespace) -> int:
    from ledger.redrive import redrive

    settings, bootstrap, database_url = _operator_settings()
    return asyncio.run(
        redrive(settings, bootstrap, database_url, args.id, args.operator, args.reason, args.again)
    )


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="velocity", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    groups = parser.add_subparsers(dest="group", required=True)

    stack = groups.add_parser("stack", help="the local stack").add_subparsers(required=True)
    stack.add_parser("run", help="broker, database, services, root API").set_defaults(
        handler=_stack_run
    )

    ledger = groups.add_parser("ledger", help="audit the ledger").add_subparsers(required=True)
    verify = ledger.add_parser("verify", help="check every chain: gaps and hashes")
    verify.add_argument("--mission", help="only this mission")
    verify.add_argument(
        "--archive-only", action="store_true", help="skip the comparison with the topic"
    )
    verify.set_defaults(handler=_verify)
    replay = ledger.add_parser("replay", help="a mission's history and its state as of a time")
    replay.add_argument("--mission", required=True)
    replay.add_argument("--as-of", type=_timestamp, help="ISO 8601 time with zone")
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    replay.set_defaults(handler=_replay)
    ledger.add_parser("restore", help="republish archived events the broker lacks").set_defaults(
        handler=_restore
    )
    views = groups.add_parser("projections", help="the PostgreSQL views").add_subparsers(
        required=True
    )
    rebuild = views.add_parser("rebuild", help="empty views and replay the log into them")
    rebuild.add_argument("name", nargs="?", help="missions, approvals, tasks or evidence")
    rebuild.set_defaults(handler=_rebuild)
    parked = views.add_parser("parked", help="events the views could not apply")
    parked.add_argument("name", nargs="?", help="only this projection")
    parked.add_argument("--json", action="store_true", help="machine-readable output")
    parked.set_defaults(handler=_parked)
    retry = views.add_parser("retry", help="apply parked events again, in order")
    retry.add_argument("name", nargs="?", help="only this projection")
    retry.add_argument("--mission", help="only this mission")
    retry.set_defaults(handler=_retry)
    evict = views.add_parser("evict", help="drop a mission's first parked event from a view")
    evict.add_argument("name", help="the projection")
    evict.add_argument("--mission", required=True)
    evict.add_argument("--reason", required=True, type=_reason, help="recorded with the eviction")
    evict.add_argument("--operator", default=_who(), help="recorded as who evicted")
    evict.set_defaults(handler=_evict)

    owners = groups.add_parser("ownership", help="who owns what (ownership.toml)")
    owned = owners.add_subparsers(required=True)
    render = owned.add_parser("render", help="write the files generated from ownership.toml")
    render.add_argument("--check", action="store_true", help="only say which are stale (exit 1)")
    render.set_defaults(handler=_ownership_render)
    owned.add_parser(
        "alertmanager", help="the Alertmanager configuration, webhooks from ALERT_WEBHOOK_<OWNER>"
    ).set_defaults(handler=_ownership_alertmanager)

    letters = groups.add_parser("deadletters", help="records set aside").add_subparsers(
        required=True
    )
    listing = letters.add_parser("list", help="dead letters not yet re-driven")
    listing.add_argument("--all", action="store_true", help="re-driven ones too")
    listing.add_argument("--reason", help="only this reason, e.g. wrong_partition")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_letters)
    again = letters.add_parser("redrive", help="send a dead-lettered command again")
    again.add_argument("id", help="the letter id `velocity deadletters list` shows")
    again.add_argument("--reason", type=_reason, default="cause fixed", help="recorded")
    again.add_argument("--operator", default=_who(), help="recorded as who re-drove it")
    again.add_argument("--again", action="store_true", help="even if re-driven before")
    again.set_defaults(handler=_redrive)

    keys = groups.add_parser("keys", help="key material").add_subparsers(required=True)
    operator = keys.add_parser("operator", help="a new operator signing key pair")
    operator.add_argument("--key-id", default="op-1", type=_key_id)
    operator.set_defaults(handler=_operator_key)

    gates = groups.add_parser("gates", help="release gates").add_subparsers(required=True)
    run = gates.add_parser("run", help="gates 1-4 against a running root, recorded in its ledger")
    run.add_argument("--env", required=True, choices=["local", "staging", "production"])
    run.add_argument("--root", required=True, help="the root's URL, e.g. http://127.0.0.1:8000")
    run.set_defaults(handler=_gates_run)
    export = gates.add_parser("export", help="a completed gate run's signed report")
    export.add_argument("run_id")
    export.add_argument("--root", required=True)
    export.add_argument("--env", default="local", choices=["local", "staging", "production"])
    export.add_argument("--out", required=True, type=Path)
    export.set_defaults(handler=_gates_export)

    rollout = groups.add_parser("rollout", help="this environment's rollout step")
    rollout.add_argument("action", choices=["show", "advance", "rollback"])
    rollout.add_argument("--root", required=True)
    rollout.add_argument("--env", default="local", choices=["local", "staging", "production"])
    rollout.add_argument("--to", type=int, choices=range(1, 7), metavar="STEP")
    rollout.add_argument("--reason", type=_reason)
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
