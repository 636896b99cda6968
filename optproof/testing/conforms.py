"""``assert_conforms``: the one-step oracle over generated cases, as a test assertion.

Each case is a few parameter tensors of different shapes (a 0-d one included) with
generated gradients; ``factory(params)`` builds the optimizer under test on them; every step
is recomputed from the optimizer's own parameters and state before it (exact inputs, in
mpmath) and the optimizer's parameters and state after it must lie within the derived bound
of the exact result (``optproof.reference.bounds``). When the optimizer keeps no torch-style
state the steps are compared with the trajectory bound instead. On failure the other variants
of the rule are tried too, so that the message can say "behaves as adam (L2 decay)".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["assert_conforms"]

_SHAPES = (((2, 3), (3,), ()), ((4,), (2, 2)), ((5,), (1, 3), ()), ((3,), (3,), (3,)))


def assert_conforms(factory: Callable[..., Any], rule: str, *, dtype: str = "float32",
                    steps: int = 4, cases: int = 6, seed: int = 0, device: str = "cpu",
                    lr_schedule: Sequence[float] | None = None, grad_scale: float = 1.0,
                    timeout: float | None = 60.0) -> None:
    """Assert that the optimizer ``factory`` builds follows ``rule``.

    ``factory`` is either ``factory(params)`` (a lambda fixing the hyperparameters, which are
    then read from its first param group) or ``factory(params, **hyper)`` (an optimizer
    class): the latter is driven through the audit's configurations of the rule (torch.optim
    keyword names: ε large against the gradients, decay under a changing learning rate,
    AMSGrad, maximize, ...), ``cases`` of them at least, every one once.
    ``rule`` is a registered rule name (``optproof show --list``); ``dtype`` the parameters'
    dtype (``float32``, ``float64``, ``bfloat16``, ``float16``); ``cases`` problems of
    ``steps`` steps each, generated from ``seed``; ``lr_schedule`` sets the param groups'
    ``lr`` before each step (cycled; default: the optimizer's own lr); ``grad_scale``
    scales the generated gradients; ``timeout`` bounds each call into the optimizer.
    Raises ``AssertionError`` describing the first divergence (and which variant of the
    rule reproduces the optimizer instead, if one does).
    """
    from optproof.audit.adapters.torch import TorchAdapter
    from optproof.audit.compare import compare
    from optproof.audit.configs import Config, make_problem
    from optproof.audit.drive import run_config
    from optproof.audit.evaluate import Hypothesis
    from optproof.audit.families import IMPLIED, TORCH_VARIANT, group_of, variants
    from optproof.derivations import rule as get_rule

    spec = get_rule(rule)
    keys = set(spec.defaults) | set(IMPLIED.get(spec.name, {}))
    family = spec.family
    base = dict(get_rule(TORCH_VARIANT.get(family, spec.name)).defaults) \
        if family in TORCH_VARIANT else dict(spec.defaults)
    observations = []
    if _takes_hyperparameters(factory):
        # factory(params, **hyper): the audit's configurations of the rule, which expose every
        # convention (ε large, decay under a changing lr, AMSGrad, maximize, ...)
        from optproof.audit.configs import configs_for
        from optproof.audit.evaluate import prepare
        adapter = TorchAdapter(factory, getattr(factory, "__name__", "factory"))
        configs = [c for c in configs_for(group_of(spec.name))
                   if prepare(Hypothesis(spec.name, spec), c, c.lrs(steps), base) is not None]
        for case in range(max(cases, len(configs))):
            config = configs[case % len(configs)]
            problem = make_problem(config, steps, seed + case // len(configs), dtype, case)
            obs = run_config(adapter, config, problem, base, dtype, device, timeout)
            if obs.skipped:
                continue
            observations.append(obs)
    else:
        class _Factory(TorchAdapter):
            """A torch-style adapter whose construction is the user's factory, as given."""

            def construct(self, tensors, hyper, defaults, dropped):
                return factory(tensors)

        adapter = _Factory(factory, getattr(factory, "__name__", "factory"))
        for case in range(cases):
            shapes = _SHAPES[case % len(_SHAPES)]
            optimizer = factory([__import__("torch").zeros(1)])
            group = optimizer.param_groups[0]
            hyper = {k: _plain(v) for k, v in group.items() if k in keys and k != "params"}
            lrs = tuple(lr_schedule) if lr_schedule else None
            config = Config(f"case {case}", "generated", hyper, lr=lrs, grad_scale=grad_scale,
                            shapes=shapes)
            problem = make_problem(config, steps, seed, dtype, case)
            observations.append(run_config(adapter, config, problem, {}, dtype, device, timeout))
        base = dict(spec.defaults)
    errors = [o for o in observations if o.error]
    if errors:
        raise AssertionError(f"the optimizer failed on {len(errors)} of {cases} case(s): "
                             f"{errors[0].config.name}: {errors[0].error}")
    result = compare(Hypothesis(spec.name, spec), observations, dtype, base)
    if result.matches:
        return
    if not result.configs:
        raise AssertionError(f"rule {rule!r} cannot express the optimizer's settings "
                             f"({observations[0].config.describe()})")
    first = result.first
    obs = next(o for o in observations if o.config.name == first.config)
    lines = [f"the optimizer does not conform to rule {spec.name!r} ({dtype}): "
             f"{len(result.failed)} of {len(result.configs)} case(s) diverge",
             f"  first divergence: {first.describe()}",
             f"  case settings: {obs.config.describe()}",
             f"  inputs of that element: {first.inputs}"]
    others = [s for s in variants(group_of(spec.name)) if s.name != spec.name]
    for other in others:
        r = compare(Hypothesis(other.name, other), observations, dtype, base)
        if r.matches:
            lines.append(f"  it behaves as {other.name!r} instead ({other.summary})")
            break
    raise AssertionError("\n".join(lines))


def _takes_hyperparameters(factory) -> bool:
    """A class, or a callable taking keywords besides the parameters: ``factory(params,
    **hyper)``; a one-argument callable is ``factory(params)``."""
    import inspect
    if isinstance(factory, type):
        return True
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return False
    return len(parameters) > 1 or any(p.kind is p.VAR_KEYWORD for p in parameters)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value
