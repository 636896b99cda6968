"""Run PyTorch's own optimizer test class ``TestOptimRenewed`` on optproof's classes (CPU).

    python tests/torch_optim_suite.py PATH/TO/test_optim.py [--torch] [-k SUBSTRING]

``test/test_optim.py`` is part of the torch *source* tree, not of the wheel: give the path of
a copy that matches the installed torch (its ``OptimizerInfo`` database,
``torch.testing._internal.common_optimizers.optim_db``, does ship in the wheel). The entries of
``optim_db`` for Adam, AdamW, SGD, Adagrad, Adadelta, RMSprop and NAdam are pointed at
``optproof.torch_impl`` before the file is loaded (``--torch`` keeps torch.optim's classes:
the baseline), the CPU tests of those seven classes are run, and the counts are printed.
The file's imports of sibling test modules (``optim.test_lrscheduler`` and others, which hold
other test classes) are stubbed.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import types
import unittest

import optproof.torch_impl as ours
from torch_compat import NAMES, common_optimizers

_SIBLINGS = {"optim.test_lrscheduler": "TestLRScheduler", "optim.test_optim":
             "TestDifferentiableOptimizer", "optim.test_swa_utils": "TestSWAUtils"}


def load(path: str, *, optproof: bool) -> types.ModuleType:
    """``path`` loaded as a module, with ``optim_db`` pointed at optproof when ``optproof``."""
    co = common_optimizers()  # registers the expecttest stand-in where it is missing
    if optproof:
        for info in co.optim_db:
            if info.optim_cls.__name__ in NAMES:
                info.optim_cls = getattr(ours, info.optim_cls.__name__)
    sys.modules.setdefault("optim", types.ModuleType("optim"))
    for name, cls in _SIBLINGS.items():
        stub = sys.modules.setdefault(name, types.ModuleType(name))
        setattr(stub, cls, type(cls, (), {}))  # not a TestCase: collects nothing
    spec = importlib.util.spec_from_file_location("torch_test_optim", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="torch's test/test_optim.py")
    parser.add_argument("--torch", action="store_true", help="run torch.optim's classes")
    parser.add_argument("-k", default="", help="only tests whose name contains this")
    args = parser.parse_args(argv)
    module = load(args.path, optproof=not args.torch)
    ours_only = re.compile(rf"_({'|'.join(NAMES)})_")
    suite = unittest.TestSuite(
        test for test in unittest.defaultTestLoader.loadTestsFromTestCase(module.TestOptimRenewedCPU)
        if ours_only.search(test.id()) and args.k in test.id())
    result = unittest.TextTestRunner(verbosity=0).run(suite)
    failed = {t.id().rsplit(".", 1)[-1] for t, _ in result.failures + result.errors}
    print(f"{'torch.optim' if args.torch else 'optproof'}: run {result.testsRun}, "
          f"failed {len(result.failures)}, errors {len(result.errors)}, "
          f"skipped {len(result.skipped)}, passed {result.testsRun - len(failed) - len(result.skipped)}")
    for name in sorted(failed):
        print("  not passed:", name)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
