"""``optproof.reference.run``: its contract, its errors, and agreement with torch.optim."""

import math

import mpmath
import pytest
import torch

from optproof.derivations import rules
from optproof.derivations.symbols import t
from optproof.reference import bounded_run, resolve, run

GRADS = [[0.5, -0.25, 3.0], [-1.5, 0.125, 2.0], [0.75, 0.0, -4.0]]
PARAMS = [1.0, -2.0, 0.5]


def _torch_trajectory(cls, hyper, params=PARAMS, grads=GRADS):
    x = torch.tensor(params, dtype=torch.float64, requires_grad=True)
    opt = cls([x], **hyper)
    out = []
    for grad in grads:
        x.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
        out.append({"param": x.detach().clone(),
                    **{k: v.clone() for k, v in opt.state[x].items() if k != "step"}})
    return out


@pytest.mark.parametrize("name,cls,hyper", [
    ("adam", torch.optim.Adam, {}),
    ("adam", torch.optim.Adam, {"lr": 0.1, "weight_decay": 0.3, "amsgrad": True}),
    ("adam", torch.optim.Adam, {"lr": 0.01, "betas": (0.5, 0.9), "maximize": True}),
    ("adamw", torch.optim.AdamW, {"lr": 0.1, "weight_decay": 0.5}),
    ("adamw", torch.optim.AdamW, {"lr": 0.1, "eps": 1.0, "amsgrad": True, "maximize": True}),
])
def test_reference_agrees_with_torch_in_float64(name, cls, hyper):
    ours = run(name, hyper, PARAMS, GRADS)
    theirs = _torch_trajectory(cls, hyper)
    for step, (a, b) in enumerate(zip(ours, theirs), start=1):
        assert a["step"] == step
        assert set(a) - {"step"} == set(b)
        for key, values in b.items():
            for x, y in zip(a[key], values.tolist()):
                assert abs(x - mpmath.mpf(y)) <= 1e-13 * (1 + abs(x)), (key, step)


def test_first_adam_step_from_zero_state_is_a_signed_lr_step():
    # independent statement: from zero state, θ₁ = θ₀ − γ·g/(|g| + ε) elementwise
    lr, eps = 0.01, 1e-8
    (first,) = run("adam", {"lr": lr, "eps": eps}, PARAMS, GRADS[:1])
    with mpmath.workdps(50):
        for theta, p, grad in zip(first["param"], PARAMS, GRADS[0]):
            g = mpmath.mpf(grad)
            expected = mpmath.mpf(p) - mpmath.mpf(lr) * g / (abs(g) + mpmath.mpf(eps))
            assert abs(theta - expected) < mpmath.mpf(10) ** -40


def test_state_continues_a_run():
    whole = run("adamw", {"amsgrad": True}, PARAMS, GRADS)
    head = run("adamw", {"amsgrad": True}, PARAMS, GRADS[:1])[0]
    state = {k: v for k, v in head.items() if k != "param"}
    tail = run("adamw", {"amsgrad": True}, head["param"], GRADS[1:], state=state)
    assert tail[-1]["step"] == 3
    for key in whole[-1]:
        if key != "step":
            assert all(abs(a - b) < mpmath.mpf(10) ** -40 for a, b in zip(whole[-1][key], tail[-1][key]))


def test_a_schedule_gives_one_value_per_step():
    constant = run("adam", {"lr": 0.1}, PARAMS, GRADS[:2])
    scheduled = run("adam", {"lr": [0.1, 0.1]}, PARAMS, GRADS[:2])
    assert constant[-1]["param"] == scheduled[-1]["param"]
    changed = run("adam", {"lr": [0.1, 0.2]}, PARAMS, GRADS[:2])
    assert changed[-1]["param"] != constant[-1]["param"]
    with pytest.raises(ValueError, match="schedule"):
        run("adam", {"lr": [0.1]}, PARAMS, GRADS[:2])


def test_floats_convert_exactly():
    tiny = 5e-324  # the smallest subnormal double survives unchanged
    (step,) = run("adamw", {"weight_decay": 0.0, "lr": 1e-3}, [tiny], [[0.0]])
    assert step["param"][0] == mpmath.mpf(tiny)


@pytest.mark.parametrize("hyper,error,pattern", [
    ({"lr": -1.0}, ValueError, r"Invalid lr .*\(0, oo\)"),
    ({"betas": (1.0, 0.999)}, ValueError, r"Invalid betas\[0\]"),
    ({"betas": (0.9, -0.1)}, ValueError, r"Invalid betas\[1\]"),
    ({"eps": -1e-8}, ValueError, r"Invalid eps .*must lie in Interval\(0, oo\)"),
    ({"weight_decay": -0.1}, ValueError, r"Invalid weight_decay"),
    ({"amsgrad": 1}, TypeError, r"amsgrad must be a bool"),
    ({"momentum": 0.9}, TypeError, r"unexpected keyword 'momentum'"),
    ({"lr": "fast"}, TypeError, r"lr must be a real number, got str 'fast'"),
    ({"lr": "0.01"}, TypeError, r"lr must be a real number, got str '0.01'"),
    ({"betas": ("0.9", 0.999)}, TypeError, r"betas\[0\] must be a real number, got str"),
    ({"weight_decay": ["0.1"]}, TypeError, r"weight_decay must be a real number, got str"),
    ({"lr": None}, TypeError, r"lr must be a real number"),
])
def test_bad_hyperparameters_name_the_parameter(hyper, error, pattern):
    with pytest.raises(error, match=pattern):
        run("adam", hyper, PARAMS, GRADS[:1])


def test_bad_shapes_and_state_are_rejected():
    with pytest.raises(ValueError, match=r"grads\[0\] has 2 elements, params 3"):
        run("adam", {}, PARAMS, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="no state 'momentum_buffer'"):
        run("adam", {}, PARAMS, GRADS[:1], state={"momentum_buffer": PARAMS})
    with pytest.raises(ValueError, match="dps must be at least 20"):
        run("adam", {}, PARAMS, GRADS[:1], dps=10)


@pytest.mark.parametrize("spec", rules(), ids=lambda s: s.name)
def test_quantities_of_t_alone_are_computed_once_per_step(spec):
    compiled = resolve(spec, {}).compiled
    scalar = {t, *(h.symbol for h in compiled.program.hypers),
              *(s.prev for s in compiled.program.states if s.per_step),
              *(ev.target for ev in compiled.per_step)}
    for ev in compiled.per_element:
        assert t not in ev.expr.free_symbols
        for node in ev.expr.args:  # no per-element line evaluates a per-step sub-expression
            assert node.is_Atom or not node.free_symbols <= scalar, (ev.target, node)


def test_a_string_hyperparameter_is_a_type_error_as_in_torch():
    with pytest.raises(TypeError):  # the behaviour the reference follows
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr="0.01")
    with pytest.raises(TypeError, match="lr"):
        run("adam", {"lr": "0.01"}, PARAMS, GRADS[:1])


@pytest.mark.parametrize("spec", rules(), ids=lambda s: s.name)
def test_no_elements_is_a_run_of_empty_records(spec):
    """Empty ``params`` are what an empty tensor is to torch.optim: every step runs, the step
    count advances and the state holds empty values, with the keys of a non-empty run."""
    empty = run(spec, {}, [], [[], []])
    one = run(spec, {}, [1.0], [[0.5], [0.25]])
    assert [r["step"] for r in empty] == [1, 2]
    for a, b in zip(empty, one):
        assert set(a) == set(b)
        for key, value in b.items():
            if isinstance(value, list):
                assert a[key] == [], key


def test_no_elements_matches_torch_on_an_empty_tensor():
    x = torch.empty(0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.AdamW([x])
    for _ in range(2):
        x.grad = torch.empty(0, dtype=torch.float64)
        opt.step()
    (last,) = run("adamw", {}, [], [[], []])[-1:]
    theirs = opt.state[x]
    assert set(last) == {"param", *theirs}
    assert last["step"] == theirs["step"].item()
    assert all(last[k] == theirs[k].tolist() == [] for k in theirs if k != "step")


EPS_ZERO = [  # every rule with an eps that torch.optim accepts at 0 (it checks 0 <= eps)
    ("adam", torch.optim.Adam, {}), ("adamw", torch.optim.AdamW, {"amsgrad": True}),
    ("adagrad", torch.optim.Adagrad, {}), ("rmsprop", torch.optim.RMSprop, {}),
    ("rmsprop", torch.optim.RMSprop, {"centered": True, "momentum": 0.5}),
    ("adadelta", torch.optim.Adadelta, {}), ("nadam", torch.optim.NAdam, {}),
]


@pytest.mark.parametrize("name,cls,hyper", EPS_ZERO, ids=lambda x: x if isinstance(x, str) else "")
def test_eps_zero_is_accepted_and_agrees_with_torch(name, cls, hyper):
    """eps = 0 lies in torch's domain and in the spec's: the same steps in float64, and NaN
    (0/0) in the element whose gradients were all 0, in both."""
    hyper = {**hyper, "eps": 0.0}
    params, grads = [1.0, 2.0], [[0.5, 0.0], [-0.25, 0.0], [0.125, 0.0]]
    ours = run(name, hyper, params, grads)
    theirs = _torch_trajectory(cls, hyper, params, grads)
    for a, b in zip(ours, theirs):
        moved, zero = a["param"]
        expected = b["param"].tolist()
        assert mpmath.isnan(zero) and math.isnan(expected[1])
        # NAdam: torch keeps its mu-product in float32 (a documented difference)
        assert abs(moved - mpmath.mpf(expected[0])) <= (1e-9 if name == "nadam" else 1e-13)


def test_bounds_make_no_claim_where_eps_zero_divides_by_zero():
    last = bounded_run("adam", {"eps": 0.0}, [1.0, 2.0], [[0.5, 0.0], [0.25, 0.0]],
                       "float32")[-1]
    (x, e), (nan, unbounded) = last["param"]
    assert mpmath.isfinite(x) and e < 1e-6
    assert mpmath.isnan(nan) and unbounded == mpmath.inf
