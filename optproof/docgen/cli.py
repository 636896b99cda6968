"""The ``optproof docs`` subcommand (registered by `optproof.cli.build_parser`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["add_docs_command"]


def _docs(args: argparse.Namespace) -> int:
    from optproof.cli import UsageError

    from . import check, repository_root, write

    if args.check and (args.out or args.audit):
        raise UsageError("--check compares the checkout itself; it takes no --out or --audit")
    try:
        root = repository_root()
    except RuntimeError as error:
        raise UsageError(str(error)) from None
    start = time.perf_counter()
    if args.check:
        problems, gen = check(root)
        seconds = time.perf_counter() - start
        if problems:
            print("\n".join(problems))
            print(f"optproof docs --check: generated files are stale ({seconds:.1f} s); "
                  "run `optproof docs` and commit the result", file=sys.stderr)
            return 1
        print(f"optproof docs --check: {len(gen.text)} pages and {len(gen.plot_data)} plots "
              f"up to date ({seconds:.1f} s)")
        return 0
    out = Path(args.out).resolve() if args.out else root
    gen = write(out, root, audit=args.audit)
    seconds = time.perf_counter() - start
    print(f"optproof docs: {len(gen.text)} pages and {len(gen.png)} plots written to {out} "
          f"({seconds:.1f} s)")
    if args.verbose:
        for what, s in sorted(gen.seconds.items(), key=lambda kv: -kv[1]):
            print(f"  {s:6.2f} s  {what}")
    return 0


def add_docs_command(commands) -> None:
    """Add ``docs`` to the ``optproof`` subcommands."""
    docs = commands.add_parser(
        "docs", help="regenerate the documentation (pages, plots, README block)",
        description="Regenerate docs/, mkdocs.yml and the README's generated block from the "
                    "specs, theorems, stored audits and plots; --check fails with a diff when "
                    "the committed files are stale.")
    docs.add_argument("--out", metavar="DIR",
                      help="write the tree here instead of into the checkout")
    docs.add_argument("--check", action="store_true",
                      help="compare the committed files with a fresh generation; exit 1 "
                           "with a diff when stale (plots compared by data fingerprint)")
    docs.add_argument("--audit", action="store_true",
                      help="first rerun the framework audits for the conventions matrix")
    docs.add_argument("-v", "--verbose", action="store_true", help="print timings")
    docs.set_defaults(run=_docs)
