"""`velocity --help`: every command says what it does in one line and shows itself in use.

The parser tree is walked, not listed here, so a command added later without a summary or
an example (in infra/cli.py's COMMANDS) fails these tests instead of shipping a bare help.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.cli import build_parser

CommandPath = tuple[str, ...]
MAX_DESCRIPTION = 100


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The commands directly under `parser` (none for a leaf)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _walk(
    parser: argparse.ArgumentParser, path: CommandPath = ()
) -> Iterator[tuple[CommandPath, argparse.ArgumentParser]]:
    """The top level, every group and every leaf, each with its command path."""
    yield path, parser
    for name, child in _children(parser).items():
        yield from _walk(child, (*path, name))


def _examples(help_text: str) -> list[str]:
    """The lines of the Example(s) section, as a user reads them in the terminal."""
    lines = help_text.splitlines()
    heading = next(i for i, line in enumerate(lines) if line in ("Example:", "Examples:"))
    section = []
    for line in lines[heading + 1 :]:
        if not line.strip():
            break
        section.append(line.strip())
    return section


def _problems(path: CommandPath, parser: argparse.ArgumentParser) -> list[str]:
    """What is missing from one command's help: its one-line description, its example."""
    help_text = parser.format_help()
    problems = []
    description = parser.description or ""
    if not description.strip() or "\n" in description or len(description) >= MAX_DESCRIPTION:
        problems.append(f"description {description!r} is not one line under 100 characters")
    elif description not in help_text.splitlines():
        problems.append("the description is not a line of the help")
    command = " ".join(("velocity", *path))
    has_example = "Example:" in help_text.splitlines() or "Examples:" in help_text.splitlines()
    shown = _examples(help_text) if has_example else []
    if not any(line == command or line.startswith(f"{command} ") for line in shown):
        problems.append(f"no example starting with {command!r} under Example(s):")
    return problems


TREE = list(_walk(build_parser()))


def test_the_walk_reaches_the_top_groups_and_leaves() -> None:
    paths = {path for path, _ in TREE}
    assert {(), ("ledger",), ("ledger", "verify"), ("rollout",), ("gates", "export")} <= paths
    assert len(paths) >= 20


@pytest.mark.parametrize(
    ("path", "parser"), TREE, ids=[" ".join(("velocity", *path)) for path, _ in TREE]
)
def test_each_command_says_what_it_does_and_shows_an_example(
    path: CommandPath, parser: argparse.ArgumentParser
) -> None:
    assert _problems(path, parser) == []


@pytest.mark.parametrize(
    ("path", "parser"), TREE, ids=[" ".join(("velocity", *path)) for path, _ in TREE]
)
def test_each_argument_says_what_it_is(path: CommandPath, parser: argparse.ArgumentParser) -> None:
    bare = [
        action.dest
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction)
        and not action.help
    ]
    assert bare == []


def test_a_command_added_without_an_example_is_caught() -> None:
    """The check itself: a subcommand added the plain argparse way must not pass."""
    ledger = _children(build_parser())["ledger"]
    subcommands = next(a for a in ledger._actions if isinstance(a, argparse._SubParsersAction))
    bare = subcommands.add_parser("bare", help="a command nobody documented")
    assert len(_problems(("ledger", "bare"), bare)) == 2


def test_the_top_level_lists_every_command_it_runs() -> None:
    top = build_parser().format_help()
    leaves = [" ".join(path) for path, parser in TREE if path and not _children(parser)]
    assert [leaf for leaf in leaves if f"\n  {leaf} " not in top] == []


@pytest.mark.parametrize(
    ("args", "example"),
    [
        (["--help"], "velocity stack run"),
        (["ledger", "verify", "--help"], "velocity ledger verify --mission "),
    ],
)
def test_the_installed_command_shows_help_with_an_example(args: list[str], example: str) -> None:
    """As a user sees it: the console script on PATH, exit code 0, the example printed."""
    velocity = Path(sys.executable).parent / "velocity"
    shown = subprocess.run(
        [str(velocity), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert any(line.startswith(example) for line in _examples(shown.stdout))
    assert shown.stdout.splitlines()[0].startswith("usage: velocity")
