"""The ``optproof`` command line.

``optproof show RULE [--format unicode|latex|markdown]`` prints a rule's update, derived from
its spec; ``optproof show --list`` lists every rule and variant with its source.
``optproof derive NAME [--steps K] [--format …]`` prints a theorem's statement and derivation;
``optproof derive --list`` lists the theorems; ``optproof derive --check`` proves them all and
exits 1 if any proof fails. ``optproof docs [--out DIR] [--check] [--audit]`` regenerates
the documentation (`optproof.docgen`). Usage errors
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


def _print_listing(kind: str, what: str, title: str, rows) -> None:
    """A table of (name, one-line description, sources) rows, wide enough to read."""
    table = Table(kind, what, "source", title=title)
    for name, line, sources in rows:
        table.add_row(name, line, "; ".join(sources))
    Console(width=max(Console().width, 160)).print(table)


def _show(args: argparse.Namespace) -> int:
    from optproof.derivations import rule, rules
    from optproof.derivations.printers import render

    if args.list:
        _print_listing("rule", "description", "optproof rules",
                       ((spec.name, spec.summary, spec.sources) for spec in rules()))
        return 0
    if args.rule is None:
        raise UsageError("show needs a RULE name or --list")
    try:
        spec = rule(args.rule)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(render(spec, args.format))
    return 0


def _derive(args: argparse.Namespace) -> int:
    from optproof.derivations.theorems import prove, render, theorem, theorems

    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be a positive number of steps, got {args.steps}")
    if args.list:
        _print_listing("theorem", "statement", "optproof theorems",
                       ((th.name, th.title, th.sources) for th in theorems()))
        return 0
    if args.check:
        chosen = [theorem(args.name)] if args.name else list(theorems())
        table = Table("theorem", "verdict", "claims", "numeric checks", "time (s)",
                      title="optproof derive --check")
        failed = 0
        total = 0.0
        for th in chosen:
            report = prove(th, args.steps)
            total += report.seconds
            failed += not report.ok
            table.add_row(th.name, report.verdict,
                          f"{sum(r.ok for r in report.results)}/{len(report.results)}",
                          f"{sum(c.ok for c in report.checks)}/{len(report.checks)}",
                          f"{report.seconds:.2f}")
            for r in report.results:
                if not r.ok:
                    table.add_row("", f"✘ {r.claim.label}", r.method, "", "")
            for c in report.checks:
                if not c.ok:
                    table.add_row("", f"✘ {c.what}", f"{c.discrepancy:.3g}", "", "")
        table.add_row("total", "proved" if not failed else f"{failed} FAILED", "", "",
                      f"{total:.2f}")
        Console(width=max(Console().width, 120)).print(table)
        return 1 if failed else 0
    if args.name is None:
        raise UsageError("derive needs a theorem NAME, --list or --check")
    print(render(theorem(args.name), args.format, args.steps), end="")
    return 0


def _theorem_error(run):
    """Turn an unknown theorem name (ValueError naming the closest) into a usage error."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except ValueError as error:
            if str(error).startswith("unknown theorem"):
                raise UsageError(str(error)) from None
            raise

    return wrapped


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
    derive = commands.add_parser("derive", help="print or prove a theorem about the rules")
    derive.add_argument("name", nargs="?", metavar="NAME",
                        help="theorem name, e.g. adam-l2-vs-adamw (see --list)")
    derive.add_argument("--steps", type=int, default=None, metavar="K",
                        help="number of unrolled steps (theorems about trajectories)")
    derive.add_argument("--format", choices=FORMATS, default="unicode")
    derive.add_argument("--list", action="store_true", help="list every theorem")
    derive.add_argument("--check", action="store_true",
                        help="prove every theorem (or NAME); exit 1 if a proof fails")
    derive.set_defaults(run=_theorem_error(_derive))
    from optproof.docgen.cli import add_docs_command

    add_docs_command(commands)
    from optproof.audit.cli import register as add_audit_commands

    add_audit_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except UsageError as error:  # one line, whatever the arguments held
        message = str(error).replace("\r", "\\r").replace("\n", "\\n")
        print(f"optproof: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a reader that stopped early (| head)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (silences the flush at exit)
        return 0


if __name__ == "__main__":
    sys.exit(main())
