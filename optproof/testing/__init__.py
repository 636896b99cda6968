"""optproof.testing: helpers for your own test suite.

``assert_conforms(factory, rule, **options)`` checks an optimizer against one of optproof's
rules with the one-step oracle (``DESIGN.md``, "Verification method") and raises
``AssertionError`` with a readable report when it does not conform:

```python
import torch
from optproof.testing import assert_conforms

def test_my_adamw_is_torch_adamw():
    # factory(params, **hyper): driven through every audit configuration of the rule
    assert_conforms(MyAdamW, "adamw")

def test_with_my_settings():
    # factory(params): the hyperparameters are read from its first param group
    assert_conforms(lambda params: MyAdamW(params, lr=1e-2, weight_decay=0.1), "adamw",
                    lr_schedule=[1e-2, 5e-2, 2e-2])

def test_in_float64_too():
    assert_conforms(lambda params: MyAdamW(params, lr=1e-2), "adamw", dtype="float64",
                    cases=4, steps=6)
```

Keywords are torch.optim's (``lr``, ``betas``, ``eps``, ``weight_decay``, ``amsgrad``, …). The hypothesis
strategies of optproof's own suite (problems over the rules' whole domains) are in
``optproof.testing.strategies``.
"""

from __future__ import annotations

from .conforms import assert_conforms

__all__ = ["assert_conforms"]
