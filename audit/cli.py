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
import sys

__all__ = ["register"]


def _usage(message: str):
    from optproof.cli import UsageError
    return UsageError(message)


def _audit(args: argparse.Namespace) -> int:
    from .auditor import AuditUsageError, audit
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise _usage("--plot needs matplotlib: pip install 'optproof[plot]'") from None
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
                       device=args.device, seed=args.seed, timeout=args.timeout,
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
    from .vectors import vectors
    try:
        data = vectors(args.rule, steps=args.steps, seed=args.seed, dps=args.dps)
    except ValueError as error:
        raise _usage(str(error)) from None
    print(json.dumps(data, indent=1, ensure_ascii=False))
    return 0


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


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
    audit.add_argument("--steps", type=_positive(int), default=5, help="steps per configuration")
    audit.add_argument("--dtype", default="float32",
                       choices=("float32", "float64", "bfloat16", "float16"))
    audit.add_argument("--device", default="cpu", help="torch device of the parameters")
    audit.add_argument("--seed", type=int, default=0, help="seed of the generated problems")
    audit.add_argument("--timeout", type=_positive(float), default=60.0,
                       help="seconds a single call into the target may take")
    audit.add_argument("--json", action="store_true", help="machine-readable output")
    audit.add_argument("--plot", metavar="FILE", help="write a figure of the error per step")
    audit.set_defaults(run=_audit)

    vec = commands.add_parser(
        "vectors", help="golden test vectors of a rule (JSON)",
        description="Inputs and reference outputs, as decimal strings, for checking another "
                    "framework's implementation of RULE.")
    vec.add_argument("rule", help="rule name (optproof show --list)")
    vec.add_argument("--steps", type=_positive(int), default=3)
    vec.add_argument("--seed", type=int, default=0)
    vec.add_argument("--dps", type=_positive(int), default=30, help="significant digits")
    vec.set_defaults(run=_vectors)
