"""`velocity`: the one entry point for every operator command."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _stack_run(args: argparse.Namespace) -> None:
    from infra.stack import run_stack

    run_stack()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="velocity", description=__doc__)
    groups = parser.add_subparsers(dest="group", required=True)
    stack = groups.add_parser("stack", help="run the whole local stack")
    stack_commands = stack.add_subparsers(dest="command", required=True)
    stack_commands.add_parser("run", help="broker, database, services and root API").set_defaults(
        handler=_stack_run
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], None] = args.handler
    handler(args)


if __name__ == "__main__":
    main()
