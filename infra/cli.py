"""`velocity`: the one entry point for every operator command.

velocity stack run                               the whole local stack
velocity ledger verify [--mission ID] [--archive-only]
velocity ledger replay --mission ID [--as-of TIME] [--json]
velocity ledger restore                          republish the archive into the broker
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime

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
    projections = groups.add_parser("projections", help="the PostgreSQL views")
    rebuild = projections.add_subparsers(required=True).add_parser(
        "rebuild", help="empty views and replay the log into them (all, or NAME)"
    )
    rebuild.add_argument("name", nargs="?", help="missions, approvals, tasks or evidence")
    rebuild.set_defaults(handler=_rebuild)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.handler(args))


if __name__ == "__main__":
    main()
