"""Every CPU kernel path (for-loop, foreach, fused), optproof's and torch.optim's, on tensors
long enough to reach its vector loops, against the one-step oracle.

The hypothesis oracle tests draw tensors of at most 6 elements (the mpmath reference runs
element by element), and ``optproof audit`` steps shapes ``(2, 3), (3,), ()``: both reach
only a kernel's scalar tail.  A vectorised kernel runs its vector loop on
``numel − numel mod W`` elements and the scalar code on the rest, with W up to 32 for 16-bit
types on AVX-512 (torch's ``Vectorized<BFloat16>``) and more where a loop is unrolled.  Here
every parameter has ``N = 2·64 + 7`` elements — vectors of every width up to 64 lanes,
then a tail — and the one-step oracle checks each element at the first step and at two
steps from the kernel's own state, in every dtype.  torch's NAdam is outside the bound by its
documented float32 ``mu_product`` (``oracle.MU_PRODUCT``), an xfail here as in test_oracle.

Finding, torch 2.13.0 (pinned): ``torch.optim.SGD(fused=True)`` on CPU with bfloat16 or
float16 parameters never writes θ in its vector loop.  The reduced-precision ``sgd_math`` of
``aten/src/ATen/native/cpu/FusedSGDKernel.cpp`` computes the update direction (and with
momentum stores the buffer) but has no parameter store: only the ``numel mod 32`` elements
of the scalar tail move (of 135 elements, the first 128 keep their value after three steps,
with and without momentum: ``test_torch_fused_sgd_16bit_moves_only_the_tail``).  A strict
xfail records it, so that a torch that fixes it turns the case red.
"""

from __future__ import annotations

import pytest
import torch

import oracle

N = 2 * 64 + 7
DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16,
          "float16": torch.float16}

#: (class, constructor keywords): each rule's main variants
CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.1}),
    ("Adadelta", {"lr": 0.5}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("AdamW", {"lr": 0.01}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1}),
]

TORCH_SGD_16BIT = (
    "torch 2.13 fused CPU SGD, bfloat16/float16: the vector loop of the reduced-precision "
    "sgd_math (FusedSGDKernel.cpp) never stores θ; only the numel mod 32 tail elements move")


def _cases():
    for impl in oracle.IMPLS:
        for name, kwargs in CONFIGS:
            for path in oracle.paths(impl, oracle.ENTRIES[name]):
                for dname, dtype in DTYPES.items():
                    marks = []
                    if (impl, name, path) == ("torch", "SGD", "fused") and dtype.itemsize == 2:
                        marks = [pytest.mark.xfail(strict=True, reason=TORCH_SGD_16BIT)]
                    kw = "-".join(f"{k}={v}" for k, v in kwargs.items())
                    yield pytest.param(impl, name, kwargs, path, dtype, marks=marks,
                                       id=f"{impl}-{name}-{kw}-{path}-{dname}")


@pytest.mark.parametrize("impl,name,kwargs,path,dtype", list(_cases()))
def test_vector_loops_within_derived_bound(impl, name, kwargs, path, dtype):
    gen = torch.Generator().manual_seed(3)
    params = [torch.randn(N, generator=gen).to(dtype).requires_grad_(),
              torch.randn(5, N // 5 + 1, generator=gen).to(dtype).requires_grad_()]
    optimizer = oracle.optimizer_class(impl, name)(params, **kwargs, **oracle.path_kwargs(path))
    entry = oracle.ENTRIES[name]

    def grads(k):
        for p in params:
            p.grad = (torch.randn(p.shape, generator=gen) * 4.0 ** (k - 1)).to(dtype)

    report = oracle.Report()
    for k in range(3):
        report.merge(oracle.one_step(optimizer, entry.rule_map, lambda: grads(k),
                                     steps_taken=None if entry.has_step else k))
    assert report.checked >= 3 * 2 * N
    if report.violations and (impl, name) == ("torch", "NAdam"):  # as oracle.torch_mechanisms
        pytest.xfail(f"{oracle.MU_PRODUCT} — measured {report.summary()}")
    report.assert_ok()



@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_torch_fused_sgd_16bit_moves_only_the_tail(dtype, momentum):
    """The mechanism of the xfails above, pinned: after three steps of torch's fused SGD
    exactly the last ``N mod 32`` elements have moved — the scalar tail behind vectors of
    ``Vectorized<BFloat16/Half>`` (16 or 32 lanes, AVX2 or AVX-512: 128 = N − 7 is a multiple
    of both) — while the foreach path moves every element."""
    gen = torch.Generator().manual_seed(4)
    moved = {}
    for path in ("fused", "foreach"):
        p = torch.nn.Parameter(torch.randn(N, generator=gen).to(dtype))
        start = p.detach().clone()
        opt = torch.optim.SGD([p], lr=0.1, momentum=momentum, **{path: True})
        for _ in range(3):
            p.grad = torch.rand(N, generator=gen).add(0.5).to(dtype)  # |g| ≥ ½: every θ moves
            opt.step()
        moved[path] = (p.detach() != start).tolist()
    assert all(moved["foreach"])
    assert moved["fused"] == [False] * (N - N % 32) + [True] * (N % 32)
