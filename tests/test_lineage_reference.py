"""The SGD → AdamW lineage (sgd, adagrad, adadelta, rmsprop, nadam and their variants).

torch-semantics rules are checked against torch.optim 2.13 (float64, for-loop path), state for
state; the framework variants against small hand-written transcriptions of the cited framework
code (Keras 3, optax, timm), in mpmath; each variant must differ from the torch rule where its
convention differs.
"""

import mpmath
import pytest
import torch

from optproof.derivations import rule, rules
from optproof.derivations.printers import FORMATS, render
from optproof.reference import run

PARAMS = [1.0, -2.0, 0.5]
GRADS = [[0.5, -0.25, 3.0], [-1.5, 0.125, 2.0], [0.75, 0.0, -4.0], [0.25, 1.0, -0.5]]
LINEAGE = ("sgd", "sgd:sutskever", "sgd:optax-trace", "sgdw", "adagrad", "adagrad:keras",
           "adadelta", "rmsprop", "rmsprop:eps-inside", "rmsprop:lr-in-momentum",
           "rmsprop:keras-centered", "nadam", "nadam:keras3", "nadam:optax")


@pytest.fixture(autouse=True)
def _float64_scalars():
    # torch keeps NAdam's step and mu_product in the default dtype: make that float64
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _torch_trajectory(cls, hyper, decoupled=None, params=PARAMS, grads=GRADS):
    """torch's for-loop steps; ``decoupled=(λ, rate(t))`` applies θ ← θ(1 − rate·λ) first,
    by hand, for the rules whose torch class has no ``decoupled_weight_decay``."""
    x = torch.tensor(params, dtype=torch.float64, requires_grad=True)
    opt = cls([x], foreach=False, **hyper)
    out = []
    for step, grad in enumerate(grads, start=1):
        if decoupled is not None:
            wd, rate = decoupled
            with torch.no_grad():
                x.mul_(1 - rate(step) * wd)
        x.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
        out.append({"param": x.detach().clone(),
                    **{k: v.clone() for k, v in opt.state[x].items() if k != "step"}})
    return out


def _close(x, y, rel=1e-12):
    return abs(x - mpmath.mpf(y)) <= rel * abs(x) + 1e-15


def _assert_matches_torch(ours, theirs):
    for step, (a, b) in enumerate(zip(ours, theirs), start=1):
        assert a["step"] == step
        assert set(a) - {"step"} == set(b), (step, set(a), set(b))
        for key, values in b.items():
            if values.ndim == 0:  # mu_product: one value per parameter tensor
                assert _close(a[key], values.item()), (key, step, a[key], values.item())
                continue
            for x, y in zip(a[key], values.tolist()):
                assert _close(x, y), (key, step, x, y)


def _decoupled(ours, hyper, rate=None):
    """Split our hyper dict into torch's keywords and the by-hand decoupled decay."""
    theirs = {k: v for k, v in hyper.items() if k != "decoupled_weight_decay"}
    if not hyper.get("decoupled_weight_decay"):
        return theirs, None
    wd = theirs.pop("weight_decay")
    lr = hyper.get("lr", rule(ours).defaults["lr"])
    return {**theirs, "weight_decay": 0.0}, (wd, rate or (lambda t: lr))


TORCH_CASES = [
    ("sgd", torch.optim.SGD, {}),
    ("sgd", torch.optim.SGD, {"lr": 0.1, "dampening": 0.5}),  # momentum 0: no buffer
    ("sgd", torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    ("sgd", torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.2}),
    ("sgd", torch.optim.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True, "maximize": True}),
    ("sgd", torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.3,
                              "decoupled_weight_decay": True}),
    ("adagrad", torch.optim.Adagrad, {}),
    ("adagrad", torch.optim.Adagrad, {"lr": 0.1, "lr_decay": 0.5, "weight_decay": 0.1,
                                      "initial_accumulator_value": 0.2, "eps": 1e-3}),
    ("adagrad", torch.optim.Adagrad, {"lr": 0.1, "lr_decay": 0.25, "maximize": True}),
    ("adadelta", torch.optim.Adadelta, {}),
    ("adadelta", torch.optim.Adadelta, {"lr": 0.5, "rho": 0.5, "eps": 1e-3, "weight_decay": 0.1,
                                        "maximize": True}),
    ("adadelta", torch.optim.Adadelta, {"lr": 0.5, "weight_decay": 0.2,
                                        "decoupled_weight_decay": True}),
    ("rmsprop", torch.optim.RMSprop, {}),
    ("rmsprop", torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.9, "momentum": 0.9}),
    ("rmsprop", torch.optim.RMSprop, {"lr": 0.01, "centered": True, "eps": 1e-3,
                                      "weight_decay": 0.1, "maximize": True}),
    ("rmsprop", torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.5, "centered": True,
                                      "momentum": 0.5}),
    ("rmsprop", torch.optim.RMSprop, {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.3,
                                      "decoupled_weight_decay": True}),
    ("nadam", torch.optim.NAdam, {}),
    ("nadam", torch.optim.NAdam, {"lr": 0.1, "betas": (0.5, 0.9), "momentum_decay": 0.5,
                                  "weight_decay": 0.1, "maximize": True}),
    ("nadam", torch.optim.NAdam, {"lr": 0.1, "weight_decay": 0.3, "decoupled_weight_decay": True}),
    ("adam", torch.optim.Adam, {"lr": 0.1, "weight_decay": 0.3, "decoupled_weight_decay": True}),
]


@pytest.mark.parametrize("name,cls,hyper", TORCH_CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(TORCH_CASES)])
def test_torch_semantics_rules_agree_with_torch_optim(name, cls, hyper):
    native = name in ("nadam", "adam")
    theirs, decay = (dict(hyper), None) if native else _decoupled(name, hyper)
    _assert_matches_torch(run(name, hyper, PARAMS, GRADS), _torch_trajectory(cls, theirs, decay))


def test_adagrad_decoupled_decay_uses_the_decayed_rate():
    hyper = {"lr": 0.1, "lr_decay": 0.5, "weight_decay": 0.2, "decoupled_weight_decay": True}
    theirs, decay = _decoupled("adagrad", hyper, rate=lambda t: 0.1 / (1 + (t - 1) * 0.5))
    _assert_matches_torch(run("adagrad", hyper, PARAMS, GRADS),
                          _torch_trajectory(torch.optim.Adagrad, theirs, decay))


def test_sgdw_is_timm_sgdw():
    # timm SGDW: θ ← θ(1 − γλ), then torch's momentum step on the undecayed gradient
    hyper = {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.3}
    theirs = {**hyper, "weight_decay": 0.0}
    _assert_matches_torch(run("sgdw", hyper, PARAMS, GRADS),
                          _torch_trajectory(torch.optim.SGD, theirs, (0.3, lambda t: 0.1)))


# ---- hand-written transcriptions of the cited framework code (mpmath, 50 digits) ----------

def _mp(xs):
    return [mpmath.mpf(x) for x in xs]


def keras_sgd(lr, momentum, nesterov, params, grads):
    """Keras 3 SGD.update_step: m = μm − lr·g; θ += m, or θ += μm − lr·g (Nesterov)."""
    theta, m, out = _mp(params), [mpmath.mpf(0)] * len(params), []
    for grad in grads:
        g = _mp(grad)
        m = [momentum * mi - lr * gi for mi, gi in zip(m, g)]
        step = [momentum * mi - lr * gi for mi, gi in zip(m, g)] if nesterov else m
        theta = [p + s for p, s in zip(theta, step)]
        out.append((theta, m))
    return out


def optax_sgd(lr, momentum, nesterov, params, grads):
    """optax.sgd: trace f(g, t) = g + decay·t; Nesterov applies f again; then scale by −lr."""
    theta, tr, out = _mp(params), [mpmath.mpf(0)] * len(params), []
    for grad in grads:
        g = _mp(grad)
        tr = [gi + momentum * ti for gi, ti in zip(g, tr)]
        u = [gi + momentum * ti for gi, ti in zip(g, tr)] if nesterov else tr
        theta = [p - lr * ui for p, ui in zip(theta, u)]
        out.append((theta, tr))
    return out


def keras_adagrad(lr, initial, eps, params, grads):
    """Keras 3 Adagrad: acc += g²; θ −= lr·g/√(acc + ε)."""
    theta, acc, out = _mp(params), [mpmath.mpf(initial)] * len(params), []
    for grad in grads:
        g = _mp(grad)
        acc = [a + gi**2 for a, gi in zip(acc, g)]
        theta = [p - lr * gi / mpmath.sqrt(a + eps) for p, gi, a in zip(theta, g, acc)]
        out.append((theta, acc))
    return out


def rmsprop_by_hand(lr, rho, eps, momentum, centered, params, grads, *, eps_inside, lr_inside):
    """Keras 3 RMSprop (eps_inside, lr_inside), optax-style ε inside with torch's momentum
    (eps_inside only) or torch with γ in the buffer (lr_inside only), written out."""
    n = len(params)
    theta, v, gbar, buf, out = _mp(params), [mpmath.mpf(0)] * n, [mpmath.mpf(0)] * n, \
        [mpmath.mpf(0)] * n, []
    for grad in grads:
        g = _mp(grad)
        v = [rho * vi + (1 - rho) * gi**2 for vi, gi in zip(v, g)]
        gbar = [rho * a + (1 - rho) * gi for a, gi in zip(gbar, g)] if centered else [0] * n
        sq = [vi - a**2 for vi, a in zip(v, gbar)]
        den = [mpmath.sqrt(s + eps) if eps_inside else mpmath.sqrt(s) + eps for s in sq]
        inc = [gi / d * (lr if lr_inside else 1) for gi, d in zip(g, den)]
        buf = [momentum * b + i for b, i in zip(buf, inc)]
        theta = [p - (b if lr_inside else lr * b) for p, b in zip(theta, buf)]
        out.append((theta, buf))
    return out


def keras_nadam(lr, beta1, beta2, eps, params, grads):
    """Keras 3 Nadam: one u_product multiplied once per optimizer step (iterations + 1) in
    _backend_update_step, then update_step with u_t, u_{t+1} at 0.96^(iterations+1), +2."""
    theta, m, v, u_product, out = _mp(params), [0] * len(params), [0] * len(params), 1, []
    decay = mpmath.mpf("0.96")
    for iterations, grad in enumerate(grads):
        g = _mp(grad)
        u_product = u_product * beta1 * (1 - mpmath.mpf(0.5) * decay ** (iterations + 1))
        u_t = beta1 * (1 - mpmath.mpf(0.5) * decay ** (iterations + 1))
        u_t_1 = beta1 * (1 - mpmath.mpf(0.5) * decay ** (iterations + 2))
        u_product_t_1 = u_product * u_t_1
        m = [mi + (gi - mi) * (1 - beta1) for mi, gi in zip(m, g)]
        v = [vi + (gi**2 - vi) * (1 - beta2) for vi, gi in zip(v, g)]
        m_hat = [u_t_1 * mi / (1 - u_product_t_1) + (1 - u_t) * gi / (1 - u_product)
                 for mi, gi in zip(m, g)]
        v_hat = [vi / (1 - beta2 ** (iterations + 1)) for vi in v]
        theta = [p - mh * lr / (mpmath.sqrt(vh) + eps) for p, mh, vh in zip(theta, m_hat, v_hat)]
        out.append((theta, u_product))
    return out


def optax_nadam(lr, b1, b2, eps, params, grads):
    """optax scale_by_adam(nesterov=True): μ̂ = b1·bc(μ, count+1) + (1 − b1)·bc(g, count)."""
    theta, mu, nu, out = _mp(params), [0] * len(params), [0] * len(params), []
    for count, grad in enumerate(grads, start=1):
        g = _mp(grad)
        mu = [(1 - b1) * gi + b1 * mi for gi, mi in zip(g, mu)]
        nu = [(1 - b2) * gi**2 + b2 * ni for gi, ni in zip(g, nu)]
        mu_hat = [b1 * mi / (1 - b1 ** (count + 1)) + (1 - b1) * gi / (1 - b1**count)
                  for mi, gi in zip(mu, g)]
        nu_hat = [ni / (1 - b2**count) for ni in nu]
        theta = [p - lr * m / (mpmath.sqrt(n) + eps) for p, m, n in zip(theta, mu_hat, nu_hat)]
        out.append((theta, mu))
    return out


def _assert_same(ours, hand, key):
    with mpmath.workdps(50):
        for a, (theta, state) in zip(ours, hand):
            for x, y in zip(a["param"], theta):
                assert abs(x - y) <= mpmath.mpf(10) ** -35 * (1 + abs(y)), (x, y)
            if key is None:
                continue
            for x, y in zip(a[key] if isinstance(state, list) else [a[key]],
                            state if isinstance(state, list) else [state]):
                assert abs(x - y) <= mpmath.mpf(10) ** -35 * (1 + abs(y)), (key, x, y)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sutskever_is_keras_sgd(momentum, nesterov):
    ours = run("sgd:sutskever", {"lr": 0.1, "momentum": momentum, "nesterov": nesterov},
               PARAMS, GRADS)
    with mpmath.workdps(50):
        hand = keras_sgd(mpmath.mpf(0.1), mpmath.mpf(momentum), nesterov, PARAMS, GRADS)
    _assert_same(ours, hand, "momentum_buffer" if momentum else None)
    assert ("momentum_buffer" in ours[0]) == bool(momentum)  # Keras builds no slot at 0


@pytest.mark.parametrize("nesterov", [False, True])
def test_optax_trace_is_optax_sgd(nesterov):
    ours = run("sgd:optax-trace", {"lr": 0.1, "momentum": 0.9, "nesterov": nesterov}, PARAMS, GRADS)
    with mpmath.workdps(50):
        hand = optax_sgd(mpmath.mpf(0.1), mpmath.mpf(0.9), nesterov, PARAMS, GRADS)
    _assert_same(ours, hand, "momentum_buffer")


def test_adagrad_keras_is_keras_adagrad():
    ours = run("adagrad:keras", {"lr": 0.1, "eps": 1e-2}, PARAMS, GRADS)
    with mpmath.workdps(50):
        hand = keras_adagrad(mpmath.mpf(0.1), mpmath.mpf(0.1), mpmath.mpf(1e-2), PARAMS, GRADS)
    _assert_same(ours, hand, "sum")
    assert rule("adagrad:keras").defaults["initial_accumulator_value"] == 0.1
    assert rule("adagrad:keras").defaults["eps"] == 1e-7


@pytest.mark.parametrize("name,eps_inside,lr_inside", [
    ("rmsprop:eps-inside", True, False),
    ("rmsprop:lr-in-momentum", False, True),
    ("rmsprop:keras-centered", True, True),
])
@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_variants_are_their_framework_formulas(name, eps_inside, lr_inside, centered):
    hyper = {"lr": 0.01, "alpha": 0.9, "eps": 1e-2, "momentum": 0.5, "centered": centered}
    ours = run(name, hyper, PARAMS, GRADS)
    with mpmath.workdps(50):
        hand = rmsprop_by_hand(*(mpmath.mpf(hyper[k]) for k in ("lr", "alpha", "eps", "momentum")),
                               centered, PARAMS, GRADS, eps_inside=eps_inside, lr_inside=lr_inside)
    _assert_same(ours, hand, "momentum_buffer")


def test_nadam_keras3_is_keras_nadam():
    ours = run("nadam:keras3", {"lr": 0.1}, PARAMS, GRADS)
    with mpmath.workdps(50):
        hand = keras_nadam(mpmath.mpf(0.1), mpmath.mpf(0.9), mpmath.mpf(0.999), mpmath.mpf(1e-7),
                           PARAMS, GRADS)
    _assert_same(ours, hand, "mu_product")


def test_nadam_optax_is_optax_nadam():
    ours = run("nadam:optax", {"lr": 0.1, "betas": (0.8, 0.99)}, PARAMS, GRADS)
    with mpmath.workdps(50):
        hand = optax_nadam(mpmath.mpf(0.1), mpmath.mpf(0.8), mpmath.mpf(0.99), mpmath.mpf(1e-8),
                           PARAMS, GRADS)
    _assert_same(ours, hand, "exp_avg")


# ---- each variant differs from the torch rule where its convention differs ----------------

def _params_differ(a, b, by=1e-6):
    return max(abs(x - y) for x, y in zip(a[-1]["param"], b[-1]["param"])) > by


def _params_agree(a, b):
    with mpmath.workdps(50):
        return all(abs(x - y) <= mpmath.mpf(10) ** -30 * (1 + abs(x))
                   for s, r in zip(a, b) for x, y in zip(s["param"], r["param"]))


def test_sutskever_equals_torch_at_constant_lr_and_differs_under_a_schedule():
    constant = {"lr": 0.1, "momentum": 0.9}
    torch_form, keras_form = run("sgd", constant, PARAMS, GRADS), run("sgd:sutskever", constant,
                                                                       PARAMS, GRADS)
    assert _params_agree(torch_form, keras_form)
    with mpmath.workdps(50):
        for a, b in zip(torch_form, keras_form):  # v = −γ·b
            assert all(abs(v + mpmath.mpf(0.1) * x) < 1e-30
                       for x, v in zip(a["momentum_buffer"], b["momentum_buffer"]))
    schedule = {"lr": [0.1, 0.3, 0.05, 0.2], "momentum": 0.9}
    assert _params_differ(run("sgd", schedule, PARAMS, GRADS),
                          run("sgd:sutskever", schedule, PARAMS, GRADS))


def test_optax_trace_differs_from_torch_only_through_dampening():
    assert _params_agree(run("sgd", {"lr": 0.1, "momentum": 0.9}, PARAMS, GRADS),
                         run("sgd:optax-trace", {"lr": 0.1, "momentum": 0.9}, PARAMS, GRADS))
    assert _params_differ(run("sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}, PARAMS, GRADS),
                          run("sgd:optax-trace", {"lr": 0.1, "momentum": 0.9}, PARAMS, GRADS))


def test_sgdw_differs_from_sgd_with_l2_under_momentum():
    hyper = {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.3}
    assert _params_differ(run("sgd", hyper, PARAMS, GRADS), run("sgdw", hyper, PARAMS, GRADS))
    assert _params_agree(run("sgd", {**hyper, "decoupled_weight_decay": True}, PARAMS, GRADS),
                         run("sgdw", hyper, PARAMS, GRADS))


def test_eps_placement_variants_differ_from_torch():
    adagrad = {"lr": 0.1, "initial_accumulator_value": 0.1, "eps": 0.1}
    assert _params_differ(run("adagrad", adagrad, PARAMS, GRADS),
                          run("adagrad:keras", adagrad, PARAMS, GRADS))
    for centered in (False, True):
        hyper = {"lr": 0.01, "eps": 0.1, "centered": centered}
        torch_form = run("rmsprop", hyper, PARAMS, GRADS)
        assert _params_differ(torch_form, run("rmsprop:eps-inside", hyper, PARAMS, GRADS))
        assert _params_differ(torch_form, run("rmsprop:keras-centered", hyper, PARAMS, GRADS))


def test_lr_in_momentum_scales_the_buffer_and_differs_under_a_schedule():
    hyper = {"lr": 0.01, "momentum": 0.9}
    torch_form, keras_form = run("rmsprop", hyper, PARAMS, GRADS), run("rmsprop:lr-in-momentum",
                                                                       hyper, PARAMS, GRADS)
    assert _params_agree(torch_form, keras_form)
    with mpmath.workdps(50):
        for a, b in zip(torch_form, keras_form):  # b' = γ·b
            assert all(abs(mpmath.mpf(0.01) * x - y) < 1e-30
                       for x, y in zip(a["momentum_buffer"], b["momentum_buffer"]))
    schedule = {"lr": [0.01, 0.05, 0.002, 0.02], "momentum": 0.9}
    assert _params_differ(run("rmsprop", schedule, PARAMS, GRADS),
                          run("rmsprop:lr-in-momentum", schedule, PARAMS, GRADS), by=1e-9)


def test_nadam_variants_differ_from_torch_where_their_schedule_does():
    keras = run("nadam:keras3", {"lr": 0.1, "eps": 1e-8}, PARAMS, GRADS)
    assert _params_differ(run("nadam", {"lr": 0.1}, PARAMS, GRADS), keras)
    # torch with ψ = 1 is Keras's schedule; on one tensor the shared product coincides
    assert _params_agree(run("nadam", {"lr": 0.1, "momentum_decay": 1.0}, PARAMS, GRADS), keras)
    assert _params_differ(run("nadam", {"lr": 0.1}, PARAMS, GRADS),
                          run("nadam:optax", {"lr": 0.1}, PARAMS, GRADS))


# ---- momentum 0: torch keeps no buffer ------------------------------------------------------

@pytest.mark.parametrize("name", ["sgd", "sgdw", "rmsprop", "rmsprop:lr-in-momentum"])
def test_no_momentum_buffer_at_momentum_zero(name):
    (first,) = run(name, {"momentum": 0.0}, PARAMS, GRADS[:1])
    assert "momentum_buffer" not in first
    with pytest.raises(ValueError, match="no state 'momentum_buffer'"):
        run(name, {"momentum": 0.0}, PARAMS, GRADS[:1], state={"momentum_buffer": PARAMS})
    (first,) = run(name, {"momentum": 0.5}, PARAMS, GRADS[:1])
    assert "momentum_buffer" in first


def test_nadam_state_continues_a_run():
    whole = run("nadam", {"lr": 0.1}, PARAMS, GRADS)
    head = run("nadam", {"lr": 0.1}, PARAMS, GRADS[:2])[-1]
    tail = run("nadam", {"lr": 0.1}, head["param"], GRADS[2:],
               state={k: v for k, v in head.items() if k != "param"})
    assert tail[-1]["mu_product"] == whole[-1]["mu_product"]
    assert tail[-1]["param"] == whole[-1]["param"]


# ---- printing and errors ----------------------------------------------------------------------

@pytest.mark.parametrize("spec", rules(), ids=lambda s: s.name)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_rule_renders_in_every_format(spec, fmt):
    text = render(spec, fmt)
    assert text.strip()


def test_the_lineage_is_registered():
    names = {spec.name for spec in rules()}
    assert set(LINEAGE) <= names
    for name in LINEAGE:
        spec = rule(name)
        assert spec.sources and spec.mirrors
        if ":" not in name and name != "sgdw":
            assert spec.defaults["decoupled_weight_decay"] is False


@pytest.mark.parametrize("name,hyper,error,pattern", [
    ("sgd", {"momentum": -0.1}, ValueError, r"Invalid momentum"),
    ("sgd", {"lr": 0.0}, ValueError, r"Invalid lr"),
    ("sgd", {"dampening": 1.5}, ValueError, r"Invalid dampening"),
    ("sgd", {"nesterov": True}, ValueError, r"Invalid momentum .*\(0, 1\)"),
    ("sgd", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, ValueError,
     r"Invalid dampening .*\{0\}"),
    ("sgd", {"nesterov": 1}, TypeError, r"nesterov must be a bool"),
    ("sgd", {"decoupled_weight_decay": "yes"}, TypeError, r"decoupled_weight_decay must be a bool"),
    ("sgd:optax-trace", {"dampening": 0.1}, TypeError, r"unexpected keyword 'dampening'"),
    ("sgdw", {"weight_decay": -1.0}, ValueError, r"Invalid weight_decay"),
    ("adagrad", {"lr_decay": -1.0}, ValueError, r"Invalid lr_decay"),
    ("adagrad", {"initial_accumulator_value": -0.1}, ValueError, r"Invalid initial_accumulator_value"),
    ("adagrad", {"eps": -1e-10}, ValueError, r"Invalid eps"),
    ("adagrad:keras", {"lr_decay": 0.1}, TypeError, r"unexpected keyword 'lr_decay'"),
    ("adadelta", {"rho": 1.0}, ValueError, r"Invalid rho"),
    ("adadelta", {"lr": "fast"}, TypeError, r"lr must be a real number"),
    ("rmsprop", {"alpha": 1.5}, ValueError, r"Invalid alpha"),
    ("rmsprop", {"momentum": 1.0}, ValueError, r"Invalid momentum"),
    ("rmsprop", {"centered": 1}, TypeError, r"centered must be a bool"),
    ("nadam", {"momentum_decay": -0.004}, ValueError, r"Invalid momentum_decay"),
    ("nadam", {"betas": (0.9, 1.0)}, ValueError, r"Invalid betas\[1\]"),
    ("nadam:keras3", {"momentum_decay": 0.004}, TypeError, r"unexpected keyword 'momentum_decay'"),
    ("nadam:optax", {"betas": 0.9}, TypeError, r"betas must be a tuple"),
])
def test_bad_hyperparameters_name_the_parameter(name, hyper, error, pattern):
    with pytest.raises(error, match=pattern):
        run(name, hyper, PARAMS, GRADS[:1])
