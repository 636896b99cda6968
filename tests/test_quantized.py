"""The quantized-state oracle (`optproof.reference.quantized`): it accepts a faithful low-bit
kernel, rejects every planted mistake, and runs on bitsandbytes' and torchao's optimizers
where they are installed.

``SyntheticAdamW8bit`` is the library-independent kernel: the state stored as codes of the
documented dynamic map (signed for ``exp_avg``, unsigned for ``exp_avg_sq``) with one absmax
per block, dequantized in float32, stepped by torch.optim.AdamW in float32, and re-quantized
by a rounding mode chosen per test — so CI without the optional libraries still exercises
every check. The negative controls are the issue's: a wrong map (linear, or shifted by one
code), a scale taken from the neighbouring block, truncation instead of rounding, and
round-to-nearest (or truncation) where stochastic rounding is claimed.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from optproof.reference import bounded_run
from optproof.reference.quantized import (Quantizer, StoredState, check_quantized_step,
                                          documented_dynamic_map, map_deviation,
                                          stochastic_test)

HYPER = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}
SIGNED = tuple(float(np.float32(v)) for v in documented_dynamic_map(True))
UNSIGNED = tuple(float(np.float32(v)) for v in documented_dynamic_map(False))
LINEAR = tuple(float(v) for v in np.linspace(-1, 1, 256, dtype=np.float32))


def _round(y: np.ndarray, levels: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Indices into ascending ``levels`` of ``y`` rounded by ``mode``."""
    hi = np.clip(np.searchsorted(levels, y), 1, len(levels) - 1)
    lo = hi - 1
    a, b = levels[lo], levels[hi]
    y = np.clip(y, levels[0], levels[-1])
    if mode == "nearest":
        up = (y - a) > (b - y)
    elif mode == "stochastic":
        up = rng.random(y.shape) < (y - a) / (b - a)
    elif mode == "truncate":  # toward zero
        up = np.where(y >= 0, y == b, y != a)
    else:
        raise ValueError(mode)
    return np.where(y == b, hi, np.where(up, hi, lo))


class SyntheticAdamW8bit:
    """One parameter tensor of a blockwise 8-bit AdamW, quantizing with a chosen mistake.

    ``mistake``: None; ``"linear-map"`` or ``"shifted-map"`` (the codes index another map
    than the one the state claims); ``"neighbour-scale"`` (each block stored with the next
    block's absmax); ``"old-scale"`` (with the absmax of the state before the step);
    ``"truncate"``. ``rounding``: how codes are picked (``nearest`` or
    ``stochastic``), independent of what the oracle is told.
    """

    def __init__(self, n: int, block: int = 64, *, rounding: str = "nearest",
                 mistake: str | None = None, seed: int = 0):
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.block, self.rounding, self.mistake = block, rounding, mistake
        self.param = torch.randn(n, generator=self.gen)
        self.step_count = 0
        blocks = -(-n // block)
        self.state = {"exp_avg": (np.zeros(n, np.int64), np.zeros(blocks, np.float32)),
                      "exp_avg_sq": (np.zeros(n, np.int64), np.zeros(blocks, np.float32))}

    def maps(self, key: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(the map the state claims, the map the kernel quantizes with)."""
        claimed = SIGNED if key == "exp_avg" else UNSIGNED
        used = {"linear-map": LINEAR}.get(self.mistake, claimed)
        return claimed, used

    def stored(self, key: str, rounding: str = "nearest") -> StoredState:
        codes, scales = self.state[key]
        return StoredState(tuple(int(c) for c in codes), tuple(float(s) for s in scales),
                           Quantizer("synthetic", self.maps(key)[0], self.block, rounding))

    def snapshot(self, rounding: str = "nearest") -> dict:
        return {"param": self.param.double().tolist(), "step": self.step_count,
                **{k: self.stored(k, rounding) for k in self.state}}

    def _dequantize(self, key: str) -> torch.Tensor:
        codes, scales = self.state[key]
        values = np.asarray(self.maps(key)[1], np.float32)[codes]
        return torch.from_numpy(values * np.repeat(scales, self.block)[:len(codes)])  # float32

    def _quantize(self, key: str, x: np.ndarray) -> None:
        n, blocks = len(x), len(self.state[key][1])
        padded = np.zeros(blocks * self.block, np.float32)
        padded[:n] = np.abs(x)
        absmax = padded.reshape(blocks, self.block).max(axis=1)
        if self.mistake == "neighbour-scale":
            absmax = np.roll(absmax, -1)
        elif self.mistake == "old-scale" and self.step_count > 1:
            absmax = self.state[key][1]
        scale = np.repeat(absmax, self.block)[:n]
        y = np.where(scale > 0, x / np.where(scale > 0, scale, 1), 0).astype(np.float32)
        levels = np.asarray(self.maps(key)[1], np.float32)
        mode = "truncate" if self.mistake == "truncate" else self.rounding
        codes = _round(y.astype(np.float64), levels.astype(np.float64), mode, self.rng)
        if self.mistake == "shifted-map":
            codes = np.clip(codes + 1, 0, 255)
        self.state[key] = (codes, absmax)

    def step(self, grad: torch.Tensor | None = None, hyper: dict | None = None) -> list[float]:
        """One step on ``grad`` (drawn when ``None``) with ``hyper`` (default `HYPER`)."""
        grad = torch.randn(self.param.shape, generator=self.gen) if grad is None else grad
        p = self.param.clone().requires_grad_(True)
        opt = torch.optim.AdamW([p], **(hyper or HYPER), foreach=False)
        if self.step_count:
            opt.state[p] = {"step": torch.tensor(float(self.step_count)),
                            "exp_avg": self._dequantize("exp_avg"),
                            "exp_avg_sq": self._dequantize("exp_avg_sq")}
        p.grad = grad
        opt.step()
        self.step_count += 1
        self.param = p.detach()
        for key in self.state:
            self._quantize(key, opt.state[p][key].numpy())
        return grad.double().tolist()


def _one_step(kernel: SyntheticAdamW8bit, steps: int = 2, rounding: str = "nearest"):
    """Run ``steps`` − 1 steps, then check the last with the oracle told ``rounding``."""
    for _ in range(steps - 1):
        kernel.step()
    before = kernel.snapshot(rounding)
    grads = kernel.step()
    return check_quantized_step("adamw", HYPER, before, kernel.snapshot(rounding), grads)


# --------------------------------------------------------------------------- maps


def test_documented_dynamic_map_shapes():
    """256 sorted values with 0 and 1; signed: symmetric but for 1 (there is no −1);
    unsigned: none negative; torchao's 4-bit signed map (3 exponent bits) has 16."""
    for signed in (True, False):
        m = documented_dynamic_map(signed)
        assert len(m) == 256 and m == sorted(m) and 0 in m and m[-1] == 1
    assert min(documented_dynamic_map(False)) == 0
    signed = documented_dynamic_map(True)
    assert all(-v in signed for v in signed if v != 1) and -1 not in signed
    assert len(documented_dynamic_map(True, 3, 4)) == 16
    # the smallest nonzero magnitude: 10⁻⁶·(0.1 + 0.9/4) (i = 0 has two points, one midpoint)
    assert min(abs(v) for v in signed if v) == mpmath.mpf("1e-6") * mpmath.mpf("0.55")


def test_map_deviation_separates_maps():
    assert map_deviation(SIGNED, documented_dynamic_map(True)) <= 1
    assert map_deviation(LINEAR, documented_dynamic_map(True)) > 1e6
    assert map_deviation(SIGNED[:-1], documented_dynamic_map(True)) == math.inf


@pytest.mark.parametrize("library", ["bitsandbytes", "torchao"])
def test_library_maps_are_the_documented_maps(library):
    """Each library's float32 map is the documented map within 3 u (linspace, midpoint and
    power each round once in float32)."""
    if library == "bitsandbytes":
        f = pytest.importorskip("bitsandbytes.functional")
        maps = [(f.create_dynamic_map(signed=s).tolist(), documented_dynamic_map(s))
                for s in (True, False)]
    else:
        pytest.importorskip("torchao")
        from torchao.optim import subclass_4bit, subclass_8bit
        maps = [(subclass_8bit.get_qmap_signed(), documented_dynamic_map(True)),
                (subclass_8bit.get_qmap_unsigned(), documented_dynamic_map(False)),
                (subclass_4bit.get_qmap_signed(), documented_dynamic_map(True, 3, 4)),
                (subclass_4bit.get_qmap_unsigned(), [mpmath.mpf(k) / 16 for k in range(1, 17)])]
    for values, documented in maps:
        assert map_deviation(values, documented) <= 3


# --------------------------------------------------------------------------- inputs


def test_bad_inputs_name_the_parameter():
    with pytest.raises(ValueError, match="block_size"):
        Quantizer("q", SIGNED, 0)
    with pytest.raises(ValueError, match="rounding"):
        Quantizer("q", SIGNED, 64, "up")
    with pytest.raises(ValueError, match="scales"):
        StoredState((0,) * 65, (1.0,), Quantizer("q", SIGNED, 64))
    with pytest.raises(ValueError, match="codes"):
        StoredState((256,), (1.0,), Quantizer("q", SIGNED, 64))
    with pytest.raises(ValueError, match="param_rounding"):
        check_quantized_step("adamw", HYPER, {"param": [1.0]}, {"param": [1.0]}, [1.0],
                             param_rounding="stochastic")
    with pytest.raises(ValueError, match="state_errors"):
        bounded_run("adamw", HYPER, [1.0], [[1.0]], "float32", state={"exp_avg": [0.5]},
                    state_errors={"exp_avg_sq": [1e-9]})
    with pytest.raises(ValueError, match="elements"):
        bounded_run("adamw", HYPER, [1.0], [[1.0]], "float32", state={"exp_avg": [0.5]},
                    state_errors={"exp_avg": [1e-9, 1e-9]})


def test_state_errors_carry_through_the_bound():
    """An input known only within e widens every output that reads it, by at least its
    first-order effect (β₁·e on exp_avg)."""
    state = {"step": 3, "exp_avg": [0.25], "exp_avg_sq": [0.5]}
    exact = bounded_run("adamw", HYPER, [1.0], [[0.5]], "float32", state=state)[0]
    e = 2.0 ** -20
    wide = bounded_run("adamw", HYPER, [1.0], [[0.5]], "float32", state=state,
                       state_errors={"exp_avg": [e]})[0]
    assert wide["exp_avg"][0][1] - exact["exp_avg"][0][1] >= 0.9 * e
    assert wide["param"][0][1] > exact["param"][0][1]
    assert wide["exp_avg_sq"][0][1] == exact["exp_avg_sq"][0][1]


class _Layout:
    """The audit adapters' ``QuantizedState`` fields the oracle reads."""

    def __init__(self, scale_rule, rounding="nearest"):
        self.codes, self.scales, self.code_map = [0, 255], [2.0], SIGNED
        self.block_size, self.scale_rule, self.rounding = 256, scale_rule, rounding


def test_from_layout_reads_the_adapters_interface():
    fp8 = StoredState.from_layout(_Layout("max(absmax, 1e-12)/448", "nearest even (cast)"))
    assert (fp8.quantizer.scale_floor, fp8.quantizer.scale_divisor) == (1e-12, 448.0)
    clipped = StoredState.from_layout(_Layout("absmax (clipped below at 1e-12)", "nearest, ties up"))
    assert (clipped.quantizer.scale_floor, clipped.quantizer.rounding) == (1e-12, "nearest")
    assert StoredState.from_layout(_Layout("absmax", "lut65536")).quantizer.resolution > 1 / 65536
    assert StoredState.from_layout(_Layout("absmax")).dequantized() == [2 * SIGNED[0], 2]
    with pytest.raises(ValueError, match="scale_rule"):
        StoredState.from_layout(_Layout("rms"))
    with pytest.raises(ValueError, match="rounding"):
        StoredState.from_layout(_Layout("absmax", "up"))


# --------------------------------------------------------------------------- synthetic kernel


def test_faithful_kernel_passes():
    """Three steps (a partial last block included): parameter, scales and codes conform."""
    report = _one_step(SyntheticAdamW8bit(200), steps=3)
    report.assert_ok()
    assert report.checks["code:exp_avg"].checked == 200
    assert report.checks["scale:exp_avg_sq"].checked == 4


@pytest.mark.parametrize("mistake", ["linear-map", "shifted-map", "truncate"])
def test_wrong_codes_are_rejected(mistake):
    report = _one_step(SyntheticAdamW8bit(200, mistake=mistake), steps=1)
    assert not report.ok
    assert report.checks["code:exp_avg"].failed > 0
    assert report.checks["scale:exp_avg"].failed == 0


@pytest.mark.parametrize("mistake", ["neighbour-scale", "old-scale"])
def test_scale_of_another_block_or_the_old_state_is_rejected(mistake):
    """A block stored with the next block's absmax, or with the absmax of the state before
    the step: all four blocks (the last one partial) are rejected."""
    report = _one_step(SyntheticAdamW8bit(200, mistake=mistake), steps=2)
    assert report.checks["scale:exp_avg"].failed == 4
    assert report.checks["scale:exp_avg_sq"].failed == 4


def test_wrong_map_on_the_state_read_is_rejected():
    """A kernel whose dequantization used another map than the state's (the linear one):
    its parameter is off the exact step from the documented map."""
    kernel = SyntheticAdamW8bit(200, mistake="linear-map")
    kernel.step()
    before = kernel.snapshot()
    grads = kernel.step()
    report = check_quantized_step("adamw", HYPER, before, kernel.snapshot(), grads)
    assert report.checks["param"].failed > 0


N_STOCHASTIC = 768


def test_stochastic_kernel_passes_the_stochastic_test():
    report = _one_step(SyntheticAdamW8bit(N_STOCHASTIC, rounding="stochastic"), steps=2,
                       rounding="stochastic")
    report.assert_ok()
    assert report.stochastic["exp_avg"].verdict == "consistent"


@pytest.mark.parametrize("rounding", ["nearest", "truncate"])
def test_deterministic_rounding_where_stochastic_is_claimed_is_rejected(rounding):
    """Nearest rounding never takes the far neighbour, truncation takes it about half the
    time: both leave stochastic rounding's acceptance interval (false alarm ≤ 2·10⁻⁹)."""
    kernel = SyntheticAdamW8bit(N_STOCHASTIC, rounding="nearest",
                                mistake="truncate" if rounding == "truncate" else None)
    report = _one_step(kernel, steps=2, rounding="stochastic")
    assert report.checks["code:exp_avg"].failed == 0  # each code brackets its value
    assert report.stochastic["exp_avg"].verdict == "rejected"
    assert not report.ok


def test_stochastic_test_interval():
    """F = 0 is rejected once μ₋ exceeds √(2μ₊ln(1/α)); a small sample is not measured."""
    test = stochastic_test(1e-9)
    assert test.verdict == "not measured"
    test.elements, test.mean_low, test.mean_high = 400, 100.0, 100.0
    assert test.verdict == "rejected"
    test.far = 100
    assert test.verdict == "consistent"
    low, high = test.interval()
    assert 0 < low < 100 < high


def _bf16_stochastic(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """float32 → bfloat16, away from zero with probability (dropped 16 bits) / 2¹⁶."""
    bits = x.view(torch.int32)
    r = torch.randint(0, 1 << 16, x.shape, generator=gen, dtype=torch.int32)
    kept = torch.where(r < (bits & 0xFFFF), (bits & -65536) + 0x10000, bits & -65536)
    return kept.view(torch.float32).bfloat16()


@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_stochastic_parameter_rounding(rounding):
    """A bfloat16 parameter stepped in float32 (plain Adam state) and stored by stochastic
    rounding passes; stored by round-to-nearest it is rejected by the statistics."""
    gen = torch.Generator().manual_seed(1)
    n = N_STOCHASTIC
    p = torch.randn(n, generator=gen).bfloat16()
    g = torch.randn(n, generator=gen).bfloat16()
    m, v = torch.randn(n, generator=gen) * 0.1, torch.rand(n, generator=gen) * 0.01
    q = p.float().clone().requires_grad_(True)
    opt = torch.optim.AdamW([q], **HYPER, foreach=False)
    opt.state[q] = {"step": torch.tensor(4.0), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
    q.grad = g.float()
    opt.step()
    stored = _bf16_stochastic(q.detach(), gen) if rounding == "stochastic" else q.detach().bfloat16()
    before = {"param": p.double().tolist(), "step": 4, "exp_avg": m.double().tolist(),
              "exp_avg_sq": v.double().tolist()}
    after = {"param": stored.double().tolist(), "exp_avg": opt.state[q]["exp_avg"].double().tolist(),
             "exp_avg_sq": opt.state[q]["exp_avg_sq"].double().tolist()}
    report = check_quantized_step("adamw", HYPER, before, after, g.double().tolist(),
                                  param_dtype="bfloat16", param_rounding="stochastic")
    assert report.checks["param"].failed == 0
    verdict = report.stochastic["param"].verdict
    assert verdict == ("consistent" if rounding == "stochastic" else "rejected"), report.summary()


# --------------------------------------------------------------------------- bitsandbytes


def _bnb_snapshot(opt, p, quantizer) -> dict:
    """bitsandbytes 0.50.2 state (optim/optimizer.py ``Optimizer2State``): ``state1`` /
    ``state2`` uint8 codes of ``qmap1`` / ``qmap2`` with ``absmax1`` / ``absmax2`` per 256,
    or float32 ``state1`` / ``state2`` below ``min_8bit_size``."""
    st = opt.state[p]
    out = {"param": p.detach().double().tolist(), "step": int(st.get("step", 0))}
    for key, (codes, absmax, qmap) in {"exp_avg": ("state1", "absmax1", "qmap1"),
                                       "exp_avg_sq": ("state2", "absmax2", "qmap2")}.items():
        if codes not in st:
            continue
        if st[codes].dtype == torch.uint8:
            out[key] = StoredState(tuple(st[codes].tolist()), tuple(st[absmax].tolist()),
                                   quantizer(tuple(st[qmap].tolist())))
        else:
            out[key] = st[codes].double().tolist()
    return out


def _bnb_step(cls_name: str, n: int, hyper: dict, steps: int, quantizer, **kwargs):
    bnb = pytest.importorskip("bitsandbytes")
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(n))
    opt = getattr(bnb.optim, cls_name)([p], **hyper, **kwargs)
    for _ in range(steps - 1):
        p.grad = torch.randn(n)
        opt.step()
    p.grad = torch.randn(n)
    p.grad[:7] = 0  # exact zeros in the new first moment's blocks
    before = _bnb_snapshot(opt, p, quantizer) if steps > 1 else {"param": p.detach().double().tolist()}
    opt.step()
    return before, _bnb_snapshot(opt, p, quantizer), p.grad.double().tolist()


@pytest.mark.parametrize("cls_name,rule", [("AdamW8bit", "adamw"), ("Adam8bit", "adamw")])
@pytest.mark.parametrize("n,min_8bit_size", [(600, 0), (300, 4096)])
def test_bitsandbytes_cpu_conforms_to_its_table(cls_name, rule, n, min_8bit_size):
    """8-bit blockwise state (600 elements: two full blocks of 256 and a partial one) and the
    float32 state below ``min_8bit_size``; Adam8bit applies decoupled decay (adamw)."""
    before, after, grads = _bnb_step(cls_name, n, HYPER, 3, Quantizer.bitsandbytes_cpu,
                                     min_8bit_size=min_8bit_size)
    report = check_quantized_step(rule, HYPER, before, after, grads)
    report.assert_ok()
    quantized = min_8bit_size == 0
    assert ("code:exp_avg" in report.checks) == quantized
    assert ("exp_avg" in report.checks) == (not quantized)


def test_bitsandbytes_adam8bit_decays_decoupled():
    """bitsandbytes' CPU 8-bit kernel applies the decay of Adam8bit decoupled, as AdamW
    (backends/cpu/ops.py ``_optimizer_update_8bit_blockwise_cpu``): L2 Adam is rejected."""
    before, after, grads = _bnb_step("Adam8bit", 600, HYPER, 3, Quantizer.bitsandbytes_cpu,
                                     min_8bit_size=0)
    assert check_quantized_step("adamw", HYPER, before, after, grads).ok
    assert check_quantized_step("adam", HYPER, before, after, grads).checks["param"].failed > 0


def test_bitsandbytes_cpu_is_not_round_to_nearest():
    """bitsandbytes 0.50.2's CPU table stores an exact zero of the first moment (a zero
    gradient at step 1) as code 131, +2.125e-5·absmax, not as the map's 0: under exact
    nearest rounding the oracle rejects it, under the table's resolution it accepts it."""
    before, after, grads = _bnb_step("AdamW8bit", 600, HYPER, 1,
                                     lambda v: Quantizer("exact nearest", v, 256), min_8bit_size=0)
    report = check_quantized_step("adamw", HYPER, before, after, grads)
    assert report.checks["code:exp_avg"].failed >= 7
    assert report.checks["param"].failed == 0
    zero = after["exp_avg"]
    assert zero.quantizer.values[zero.codes[0]] == pytest.approx(2.125e-5)


# --------------------------------------------------------------------------- torchao

FP8_VALUES = tuple(torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float().tolist())


def _torchao_state(t) -> StoredState | list[float]:
    """torchao 0.18.0 ``optim/subclass_{8bit,4bit,fp8}.py``: codes (4-bit: two per byte, high
    nibble first), a scale per block = max(absmax, 1e-12) (FP8: divided by 448)."""
    name = type(t).__name__
    if name == "OptimState4bit":
        codes = torch.stack([t.codes >> 4, t.codes & 0b1111], dim=-1).reshape(-1)
    elif name in ("OptimState8bit", "OptimStateFp8"):
        codes = t.codes.reshape(-1)
    else:
        return t.double().reshape(-1).tolist()
    if name == "OptimStateFp8":
        quantizer = Quantizer(name, FP8_VALUES, t.block_size, scale_floor=1e-12, scale_divisor=448.0)
        codes = codes.view(torch.uint8)
    else:
        quantizer = Quantizer(name, tuple(t.qmap.tolist()), t.block_size, scale_floor=1e-12)
    return StoredState(tuple(codes.tolist()), tuple(t.scale.tolist()), quantizer)


def _torchao_step(cls_name: str, hyper: dict, steps: int, dtype=torch.float32, **kwargs):
    pytest.importorskip("torchao")
    import torchao.optim
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(4096, dtype=dtype))
    opt = getattr(torchao.optim, cls_name)([p], **hyper, **kwargs)

    def snapshot():
        st = opt.state[p]
        return {"param": p.detach().double().tolist(), "step": int(st["step"]) if st else 0,
                **{k: _torchao_state(st[k]) for k in ("exp_avg", "exp_avg_sq") if k in st}}

    for _ in range(steps - 1):
        p.grad = torch.randn(4096, dtype=dtype)
        opt.step()
    p.grad = torch.randn(4096, dtype=dtype)
    before = snapshot()
    opt.step()
    return before, snapshot(), p.grad.double().tolist()


#: float32-exact hyperparameters: torchao keeps lr as a float32 tensor and computes 1 − βᵗ
#: in float32 from β cast to float32 (adam.py ``single_param_adam``), exact for these at t ≤ 2
EXACT32 = {"lr": 2.0 ** -7, "betas": (0.875, 1 - 2.0 ** -10), "eps": 1e-8, "weight_decay": 2.0 ** -7}


@pytest.mark.parametrize("cls_name", ["AdamW8bit", "AdamW4bit", "AdamWFp8"])
def test_torchao_conforms(cls_name):
    before, after, grads = _torchao_step(cls_name, EXACT32, 2)
    report = check_quantized_step("adamw", EXACT32, before, after, grads)
    report.assert_ok()
    assert report.checks["code:exp_avg_sq"].checked == 4096


def test_torchao_float32_step_scalars_leave_the_bound():
    """With β = (0.9, 0.999) (not float32 numbers) torchao's bias correction 1 − βᵗ uses β
    rounded to float32 while its moments use 1 − β from the float64 β: at t = 1,
    v̂ = (1 − β₂)g²/(1 − fl₃₂(β₂)) = 1.0000129·g², and θ leaves the bound (no rounding of the
    hyperparameters given to the reference explains it); its state stays conformant."""
    hyper = dict(HYPER)
    before, after, grads = _torchao_step("AdamW8bit", hyper, 2)
    report = check_quantized_step("adamw", hyper, before, after, grads)
    assert report.checks["param"].failed > 0
    assert all(report.checks[k].failed == 0 for k in report.checks if k != "param")


@pytest.mark.parametrize("cls_name", ["AdamW8bit", "AdamW4bit", "AdamWFp8"])
def test_torchao_conforms_under_its_precision_model(cls_name):
    """The same steps under the precision model the torchao adapter declares (β rounded to
    float32 in βᵗ, per-step scalars in float32, its cited source): every check passes."""
    from optproof.audit.adapters.torchao import PRECISION
    before, after, grads = _torchao_step(cls_name, HYPER, 2)
    check_quantized_step("adamw", HYPER, before, after, grads, rounding=PRECISION).assert_ok()


def test_torchao_bf16_stochastic_rounding():
    """``bf16_stochastic_round=True`` stores the float32 result by stochastic rounding."""
    before, after, grads = _torchao_step("AdamW8bit", EXACT32, 2, torch.bfloat16,
                                         bf16_stochastic_round=True)
    report = check_quantized_step("adamw", EXACT32, before, after, grads,
                                  param_dtype="bfloat16", param_rounding="stochastic")
    report.assert_ok()
    assert report.stochastic["param"].verdict == "consistent"
