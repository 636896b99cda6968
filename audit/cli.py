"""The ``audit`` and ``vectors`` subcommands, registered into ``optproof``'s parser.

``optproof audit TARGET [--arg KEY=VALUE …] [--rule R] [--steps N] [--dtype D] [--device D]
[--seed S] [--json] [--plot FILE] [--timeout S]`` — exit 0 conformant, 1 deviation, 2 usage
error. ``--arg`` passes a constructor argument to the target (the value read as a Python
literal: ``eps_root=1e-6``, ``weight_decouple=False``, ``betas=(0.9, 0.99)``).
``optproof vectors RULE [--steps N] [--seed S] [--dps D]`` — golden vectors as JSON.

Nothing heavy is imported until a subcommand runs (``optproof show`` stays fast).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import sys
from pathlib import Path

__all__ = ["register"]


def _usage(message: str):
    from optproof.cli import UsageError
    return UsageError(message)


#: seconds a call into the target may take when ``--timeout`` is not given; the calls before
#: the process's first completed step may then take ``WARMUP_TIMEOUT`` (imports, compilation)
DEFAULT_TIMEOUT = 60.0
WARMUP_TIMEOUT = 300.0


def _check_plot_path(path: str) -> None:
    """Refuse, before the audit runs, a ``--plot`` file that cannot be written: no matplotlib,
    a format matplotlib cannot write (its extension), a folder as the file, or a folder that
    does not exist or cannot be written."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase  # no pyplot, no backend
    except ImportError:
        raise _usage("--plot needs matplotlib: pip install 'optproof[plot]'") from None
    target = Path(path)
    suffix = target.suffix[1:].lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix and suffix not in formats:
        raise _usage(f"--plot {path}: matplotlib cannot write .{suffix} files; use one of "
                     f".{', .'.join(sorted(formats))}")
    if target.is_dir():
        raise _usage(f"--plot {path}: a folder, not a file name")
    folder = target.parent
    if not folder.is_dir():
        raise _usage(f"--plot {path}: no folder {str(folder)!r}")
    if not os.access(folder, os.W_OK):
        raise _usage(f"--plot {path}: the folder {str(folder)!r} is not writable")


def _audit(args: argparse.Namespace) -> int:
    from .auditor import AuditUsageError, audit
    if args.plot:
        _check_plot_path(args.plot)
    progress = None
    bar = None
    if not args.json and sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                       transient=True, console=__import__("rich.console").console.Console(
                           stderr=True))
        task = None

        def progress(what: str, total: int):
            nonlocal task
            if task is None:
                bar.start()
                task = bar.add_task(what, total=total)
            else:
                bar.update(task, advance=1, description=what)
    try:
        result = audit(args.target, rule=args.rule, steps=args.steps, dtype=args.dtype,
                       device=args.device, seed=args.seed,
                       timeout=DEFAULT_TIMEOUT if args.timeout is None else args.timeout,
                       warmup=WARMUP_TIMEOUT if args.timeout is None else None,
                       extra=dict(args.arg or ()), full=bool(args.plot), progress=progress)
    except AuditUsageError as error:
        raise _usage(str(error)) from None
    finally:
        if bar is not None:
            bar.stop()
    if args.json:
        from .serialize import to_dict
        print(json.dumps(to_dict(result), indent=2, ensure_ascii=False))
    else:
        from .report import render
        render(result)
    if args.plot:
        from .plot import plot
        plot(result, args.plot)
        if not args.json:
            print(f"plot written to {args.plot}")
    return result.exit_code


def _vectors(args: argparse.Namespace) -> int:
    from .golden import vectors
    try:
        data = vectors(args.rule, steps=args.steps, seed=args.seed, dps=args.dps)
    except ValueError as error:
        raise _usage(str(error)) from None
    print(json.dumps(data, indent=1, ensure_ascii=False))
    return 0


def _number(kind, what: str, valid):
    """An argparse ``type``: ``kind(text)`` for which ``valid`` holds, else a usage error
    naming ``what`` was expected."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value
    return parse


POSITIVE = _number(int, "a positive integer", lambda n: n > 0)
NON_NEGATIVE = _number(int, "a non-negative integer", lambda n: n >= 0)
SECONDS = _number(float, "a positive, finite number of seconds", lambda s: 0 < s < math.inf)


def _constructor_argument(text: str) -> tuple[str, object]:
    """``key=value`` with ``value`` a Python literal (number, bool, None, string, tuple)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a keyword name, got {text!r}")
    try:
        parsed = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(
            f"{key}: the value must be a Python literal (a number, True/False, None, a string "
            f"in quotes or a tuple), got {value!r}") from None
    return key, parsed


def register(commands) -> None:
    """Add ``audit`` and ``vectors`` to the subparsers ``commands`` of ``optproof``."""
    audit = commands.add_parser(
        "audit", help="audit a framework's optimizer against every variant of its rule",
        description="Drive TARGET with generated gradients over configurations chosen to "
                    "expose the conventions frameworks disagree on, compare every step with "
                    "every variant of the rule, and report. Exit 0 conformant, 1 deviation, "
                    "2 usage error.")
    audit.add_argument("target", help="import path: torch.optim.AdamW, pkg.mod.Class, "
                                      "pkg.mod:Class, optax.adamw, keras.optimizers.Adam")
    audit.add_argument("--arg", action="append", type=_constructor_argument, metavar="KEY=VALUE",
                       help="a constructor argument of the target, the value a Python literal "
                            "(repeatable): --arg eps_root=1e-6 --arg weight_decouple=False")
    audit.add_argument("--rule", help="the rule it should follow (default: inferred from "
                                      "the class name; see optproof show --list)")
    audit.add_argument("--steps", type=POSITIVE, default=5, help="steps per configuration")
    audit.add_argument("--dtype", default="float32",
                       choices=("float32", "float64", "bfloat16", "float16"))
    audit.add_argument("--device", default="cpu",
                       help="torch device of the parameters (cpu, cuda, cuda:1, …)")
    audit.add_argument("--seed", type=NON_NEGATIVE, default=0,
                       help="seed of the generated problems")
    audit.add_argument("--timeout", type=SECONDS, default=None, metavar="S",
                       help="seconds each call into the target (a construction, one step) "
                            "may take before the audit reports it as timed out and stops "
                            "driving it. Given, it bounds every call, the first included; "
                            f"not given, {DEFAULT_TIMEOUT:g} s, and the calls before the "
                            f"first completed step may take {WARMUP_TIMEOUT:g} s (imports, "
                            "compilation)")
    audit.add_argument("--json", action="store_true", help="machine-readable output")
    audit.add_argument("--plot", metavar="FILE", help="write a figure of the error per step")
    audit.set_defaults(run=_audit)

    vec = commands.add_parser(
        "vectors", help="golden test vectors of a rule (JSON)",
        description="Inputs and reference outputs, as decimal strings, for checking another "
                    "framework's implementation of RULE.")
    vec.add_argument("rule", help="rule name (optproof show --list)")
    vec.add_argument("--steps", type=POSITIVE, default=3)
    vec.add_argument("--seed", type=NON_NEGATIVE, default=0)
    vec.add_argument("--dps", type=POSITIVE, default=30, help="significant digits")
    vec.set_defaults(run=_vectors)
