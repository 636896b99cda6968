"""The ``optproof`` command line.

``optproof show RULE [--format unicode|latex|markdown]`` prints a rule's update, derived from
its spec; ``optproof show --list`` lists every rule and variant with its source. Usage errors
exit with status 2 and one line on standard error, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from . import __version__


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of argparse's usage block
        raise UsageError(message)


def _show(args: argparse.Namespace) -> int:
    from optproof.derivations import rule, rules
    from optproof.derivations.printers import render

    if args.list:
        table = Table("rule", "description", "source", title="optproof rules")
        for spec in rules():
            table.add_row(spec.name, spec.summary, "; ".join(spec.sources))
        Console(width=max(Console().width, 160)).print(table)
        return 0
    if args.rule is None:
        raise UsageError("show needs a RULE name or --list")
    try:
        spec = rule(args.rule)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(render(spec, args.format))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``optproof`` command."""
    from optproof.derivations.printers import FORMATS

    parser = _Parser(prog="optproof", description="Verified reference optimizers.")
    parser.add_argument("--version", action="version", version=f"optproof {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    show = commands.add_parser("show", help="print a rule's update equations")
    show.add_argument("rule", nargs="?", help="rule name, e.g. adamw (see --list)")
    show.add_argument("--format", choices=FORMATS, default="unicode")
    show.add_argument("--list", action="store_true", help="list every rule and variant")
    show.set_defaults(run=_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except UsageError as error:
        print(f"optproof: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a reader that stopped early (| head)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (silences the flush at exit)
        return 0


if __name__ == "__main__":
    sys.exit(main())
