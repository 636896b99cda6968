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
import time
from collections.abc import Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.table import Table

from . import __version__


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of argparse's usage block
        raise UsageError(message)


def _print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """``rows`` under ``columns``: a rich table fitted to the terminal on a terminal, plain
    tab-separated lines (a header line first) when the output is piped or redirected."""
    if not sys.stdout.isatty():
        for row in (columns, *rows):
            print("\t".join(row))
        return
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def _print_listing(kind: str, what: str, title: str, rows) -> None:
    """The (name, one-line description, sources) rows of ``--list``."""
    _print_table(title, (kind, what, "source"),
                 [(name, line, "; ".join(sources)) for name, line, sources in rows])


def _only(args: argparse.Namespace, option: str, **conflicting: str) -> None:
    """``option`` takes none of ``conflicting`` (attribute name → how the command line
    spells it): a usage error naming both, rather than one silently ignored."""
    for name, spelled in conflicting.items():
        if getattr(args, name) not in (None, False):
            raise UsageError(f"{option} takes no {spelled}")


def _show(args: argparse.Namespace) -> int:
    from optproof.derivations import rule, rules
    from optproof.derivations.printers import render

    if args.list:
        _only(args, "show --list", rule="RULE", format="--format")
        _print_listing("rule", "description", "optproof rules",
                       ((spec.name, spec.summary, spec.sources) for spec in rules()))
        return 0
    if args.rule is None:
        raise UsageError("show needs a RULE name or --list")
    try:
        spec = rule(args.rule)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(render(spec, args.format or "unicode"))
    return 0


@contextmanager
def _progress():
    """``progress(what)`` for a long derivation: a spinner with the stage and the elapsed
    time on standard error when it is a terminal, nothing otherwise."""
    if not sys.stderr.isatty():
        yield lambda what: None
        return
    with Console(stderr=True).status("", spinner="dots") as status:
        start = time.perf_counter()
        yield lambda what: status.update(f"{what} ({time.perf_counter() - start:.0f} s)")


def _steps_allowed(th, k: int | None) -> None:
    """``--steps K`` for ``th``: a usage error if it unrolls nothing or K is beyond the k
    measured to finish within a minute (``Theorem.max_steps``)."""
    if k is None:
        return
    if not th.uses_steps:
        raise UsageError(f"theorem {th.name!r} unrolls no steps; it takes no --steps")
    if k > th.max_steps:
        raise UsageError(f"--steps {k} is beyond what {th.name!r} derives in reasonable time: "
                         f"at most {th.max_steps} (the symbolic work grows steeply with K)")


def _derive(args: argparse.Namespace) -> int:
    from optproof.derivations.theorems import prove, render, theorem, theorems

    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be a positive number of steps, got {args.steps}")
    if args.list:
        _only(args, "derive --list", name="NAME", check="--check", steps="--steps",
              format="--format")
        _print_listing("theorem", "statement", "optproof theorems",
                       ((th.name, th.title, th.sources) for th in theorems()))
        return 0
    if args.check:
        _only(args, "derive --check", format="--format")
        chosen = [theorem(args.name)] if args.name else list(theorems())
        for th in chosen:  # --check alone: K applies to the theorems that unroll steps
            if th.uses_steps or args.name:
                _steps_allowed(th, args.steps)
        rows = []
        failed = 0
        total = 0.0
        with _progress() as progress:
            for th in chosen:
                report = prove(th, args.steps if th.uses_steps else None, progress=progress)
                total += report.seconds
                failed += not report.ok
                rows.append((th.name, report.verdict,
                             f"{sum(r.ok for r in report.results)}/{len(report.results)}",
                             f"{sum(c.ok for c in report.checks)}/{len(report.checks)}",
                             f"{report.seconds:.2f}"))
                rows += [("", f"✘ {r.claim.label}", r.method, "", "")
                         for r in report.results if not r.ok]
                rows += [("", f"✘ {c.what}", f"{c.discrepancy:.3g}", "", "")
                         for c in report.checks if not c.ok]
        rows.append(("total", "proved" if not failed else f"{failed} FAILED", "", "",
                     f"{total:.2f}"))
        _print_table("optproof derive --check",
                     ("theorem", "verdict", "claims", "numeric checks", "time (s)"), rows)
        return 1 if failed else 0
    if args.name is None:
        raise UsageError("derive needs a theorem NAME, --list or --check")
    th = theorem(args.name)
    _steps_allowed(th, args.steps)
    with _progress() as progress:
        text = render(th, args.format or "unicode", args.steps, progress=progress)
    print(text, end="")
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
    # not required=True: a missing command is reported after unrecognized arguments, so that
    # ``optproof --bogus`` names --bogus
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    show = commands.add_parser("show", help="print a rule's update equations")
    show.add_argument("rule", nargs="?", help="rule name, e.g. adamw (see --list)")
    show.add_argument("--format", choices=FORMATS, help="default: unicode")
    show.add_argument("--list", action="store_true", help="list every rule and variant")
    show.set_defaults(run=_show)
    derive = commands.add_parser("derive", help="print or prove a theorem about the rules")
    derive.add_argument("name", nargs="?", metavar="NAME",
                        help="theorem name, e.g. adam-l2-vs-adamw (see --list)")
    derive.add_argument("--steps", type=int, default=None, metavar="K",
                        help="number of unrolled steps (theorems about trajectories; each "
                             "theorem has a largest K, measured to finish within a minute)")
    derive.add_argument("--format", choices=FORMATS, help="default: unicode")
    derive.add_argument("--list", action="store_true", help="list every theorem")
    derive.add_argument("--check", action="store_true",
                        help="prove every theorem (or NAME); exit 1 if a proof fails")
    derive.set_defaults(run=_theorem_error(_derive))
    from optproof.docgen.cli import add_docs_command

    add_docs_command(commands)
    from optproof.audit.cli import register as add_audit_commands

    add_audit_commands(commands)
    return parser


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    return next(list(a.choices) for a in parser._actions
                if isinstance(a, argparse._SubParsersAction))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError(f"the following arguments are required: command (one of "
                             f"{', '.join(_commands(parser))})")
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
