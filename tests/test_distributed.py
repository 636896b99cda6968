"""Sharded training: optproof.torch_impl under FSDP2 and ZeroRedundancyOptimizer.

One job of 2 CPU processes (gloo, loopback only, a free port) runs every case below and writes
its measurements to JSON; the tests then check them.  The job is started once per session (the
``job`` fixture), so the whole file costs one process start-up (~10-20 s, mostly
``import torch``) plus a few seconds of steps.

The bound, and why it is zero
-----------------------------
Every rule here is elementwise: element ``i`` of a parameter is updated from element ``i`` of its
gradient and state, by the same sequence of ops with the same Python-float coefficients (the
step counter is a plain CPU tensor on every rank, as in torch.optim).  Sharding only changes
*which process* holds element ``i``, so given the same gradients the sharded update must be
**bitwise** equal to the unsharded one: the tolerance is 0 ULP (we also report the max ULP
distance, and ``-0.0``/``+0.0`` count as different).

What sharding does change is the gradient: FSDP2 reduce-scatters (and DDP all-reduces) the
per-rank gradients, ``g0/2 + g1/2``, which rounds differently from one process's backward over
the concatenated batch.  So each sharded run is compared against a plain single-process
optimizer on an unsharded copy of the model *fed the same reduced gradients*
(``grad.full_tensor()`` for FSDP2, the DDP-averaged ``grad`` for ZeRO) -- that isolates the
optimizer.  In addition, ``fsdp2-same-batch`` feeds both ranks the same batch: the reduction is
then ``g/2 + g/2 == g`` exactly, and the sharded run must equal an independent single-process
training run (its own forward/backward) bitwise, end to end.

Run by hand: ``pytest tests/test_distributed.py -v``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

WORLD_SIZE = 2
JOB_TIMEOUT_S = 75  # whole job (start-up + all cases); the processes are killed after that
PG_TIMEOUT_S = 45  # a collective that waits longer than this raises instead of hanging
STEPS = 3

#: (optimizer, kwargs): every class, plus the prologue branches (L2 / decoupled decay, maximize)
CASES = [
    ("Adam", {"lr": 1e-2, "weight_decay": 0.1}),
    ("Adam", {"lr": 1e-2, "amsgrad": True, "maximize": True}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01,
             "decoupled_weight_decay": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
    ("Adadelta", {"lr": 1.0, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 1e-2, "momentum": 0.9, "centered": True}),
    ("RMSprop", {"lr": 1e-2}),
    ("NAdam", {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("NAdam", {"lr": 1e-2}),
]
MODES = ["fsdp2", "fsdp2-same-batch", "zero"]
#: every kernel path; the fused one runs on each rank's local shards (DTensor.to_local())
PATHS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
#: paths whose state layout (against torch.optim's same path) and checkpoint round trip are
#: checked under FSDP2, with the keywords given to torch.optim there
CHECKPOINTED = {"loop": {}, "fused": {"fused": True}}
#: torch.optim classes whose fused=True runs on DTensor: torch 2.13 registers no sharding
#: strategy for aten._fused_sgd_ / _fused_adagrad_ ("does not have a sharding strategy
#: registered"), while optproof's fused path runs every rule on the local shards
TORCH_FUSED = {"Adam", "AdamW"}


def case_key(mode: str, i: int, path: str) -> str:
    return f"{mode}/{CASES[i][0]}#{i}/{path}"


# =========================================================================== the worker
# (runs in the spawned processes: ``python tests/test_distributed.py`` with RANK etc. set)


def _ulp_distance(a: torch.Tensor, b: torch.Tensor) -> int:
    """Max distance in units in the last place (float32/float64), through the sign-magnitude
    -> two's complement map of the bit patterns; ``-0.0`` and ``+0.0`` are 1 apart."""
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    if a.numel() == 0:
        return 0
    itype = {torch.float32: torch.int32, torch.float64: torch.int64}[a.dtype]

    def ordered(t):
        i = t.detach().contiguous().view(itype).to(torch.int64)
        if itype is torch.int32:
            return torch.where(i < 0, -(i & 0x7FFFFFFF) - 1, i)
        return torch.where(i < 0, -(i & 0x7FFFFFFFFFFFFFFF) - 1, i)

    return int((ordered(a) - ordered(b)).abs().max())


def _layout(state: dict) -> dict:
    """What a state entry *is* (type, dtype, device, placements), not its value."""
    out = {}
    for k, v in state.items():
        if torch.is_tensor(v):
            placements = getattr(v, "placements", None)
            out[k] = [type(v).__name__, str(v.dtype), v.device.type,
                      str(placements) if placements is not None else None]
        else:
            out[k] = [type(v).__name__]
    return out


def _worker() -> None:  # noqa: C901 -- a flat script is the clearest here
    import datetime
    import inspect
    import traceback

    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import (
        get_optimizer_state_dict,
        set_optimizer_state_dict,
    )
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.distributed.tensor import DTensor
    from torch.nn.parallel import DistributedDataParallel

    import optproof.torch_impl as ours
    from optproof.torch_impl import _base

    torch.set_num_threads(1)  # same kernels / reduction order in every process
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=PG_TIMEOUT_S))
    rank = dist.get_rank()
    results: dict = {"rank": rank, "cases": {}, "layout": {}, "dcp": {}}

    def full(t):
        return t.full_tensor() if isinstance(t, DTensor) else t

    def model():
        # uneven shards: 5 rows -> 3 + 2; the last layer's 1 row -> 1 + 0 (an empty shard)
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))

    def sharded(m):
        fully_shard(m[0])
        fully_shard(m[2])
        fully_shard(m)
        return m

    def batch(step, same):
        g = torch.Generator().manual_seed(1000 * step + (0 if same else 1 + rank))
        return torch.randn(4, 7, generator=g), torch.randn(4, 1, generator=g)

    def loss(m, x, y):
        return (m(x) - y).square().mean()

    def compare(rec, pairs, opt, ref_opt, local_only):
        """pairs: (sharded-or-replicated param, reference param)."""
        for p, q in pairs:
            rec["max_ulp"] = max(rec["max_ulp"], _ulp_distance(full(p), q))
            if local_only and p not in opt.state:
                continue  # ZeRO: another rank owns this param's state
            s, r = opt.state[p], ref_opt.state[q]
            if sorted(s) != sorted(r):
                rec["problems"].append(f"state keys {sorted(s)} != {sorted(r)}")
                continue
            for k in r:
                if not torch.is_tensor(r[k]):
                    continue
                if r[k].shape == q.shape:
                    rec["max_ulp"] = max(rec["max_ulp"], _ulp_distance(full(s[k]), r[k]))
                    want = DTensor if isinstance(p, DTensor) else torch.Tensor
                    if not isinstance(s[k], want):
                        rec["problems"].append(f"state[{k!r}] is {type(s[k]).__name__}")
                else:  # step, mu_product: plain 0-d CPU tensors on every rank, like torch
                    if isinstance(s[k], DTensor) or s[k].device.type != "cpu":
                        rec["problems"].append(f"state[{k!r}] is {type(s[k]).__name__} "
                                               f"on {s[k].device}")
                    elif not torch.equal(s[k], r[k]):
                        rec["problems"].append(f"state[{k!r}] {s[k]} != {r[k]}")

    for mode in MODES:
        for i, (name, kwargs) in enumerate(CASES):
            for path, path_kwargs in PATHS.items():
                key = case_key(mode, i, path)
                rec = {"max_ulp": 0, "problems": [], "error": None, "seconds": 0.0}
                t0 = time.perf_counter()
                cls = getattr(ours, name)
                try:
                    ref = model()
                    m = model()
                    if mode == "zero":
                        net = DistributedDataParallel(m)
                        opt = ZeroRedundancyOptimizer(
                            m.parameters(), optimizer_class=cls, **path_kwargs, **kwargs)
                    else:
                        net = sharded(m)
                        opt = cls(m.parameters(), **path_kwargs, **kwargs)
                    ref_opt = cls(ref.parameters(), **path_kwargs, **kwargs)
                    pairs = list(zip(m.parameters(), ref.parameters()))
                    for step in range(STEPS):
                        x, y = batch(step, same=mode == "fsdp2-same-batch")
                        loss(net, x, y).backward()
                        if mode == "fsdp2-same-batch":
                            loss(ref, x, y).backward()  # its own, unsharded backward
                        else:
                            for p, q in pairs:  # the same reduced gradients
                                q.grad = full(p.grad).clone()
                        opt.step()
                        ref_opt.step()
                        opt.zero_grad()
                        ref_opt.zero_grad()
                        local = opt.optim if mode == "zero" else opt
                        compare(rec, pairs, local, ref_opt, local_only=mode == "zero")
                    if mode == "fsdp2" and path in CHECKPOINTED:
                        # state layout vs torch.optim's same path on the same sharded model
                        tcls = getattr(torch.optim, name)
                        if path == "loop" or name in TORCH_FUSED:
                            tm = sharded(model())
                            accepted = inspect.signature(tcls).parameters  # no decoupled_... in SGD
                            topt = tcls(tm.parameters(), **CHECKPOINTED[path],
                                        **{k: v for k, v in kwargs.items() if k in accepted})
                            x, y = batch(0, same=False)
                            loss(tm, x, y).backward()
                            topt.step()
                            last = list(m.parameters())[-1]  # the empty shard on rank 1
                            results["layout"][f"{name}#{i}/{path}"] = {
                                "ours": _layout(opt.state[last]),
                                "torch": _layout(topt.state[list(tm.parameters())[-1]]),
                            }
                        # the FSDP2 checkpoint path (torch.distributed.checkpoint.state_dict)
                        osd = get_optimizer_state_dict(m, opt)
                        m2 = sharded(model())
                        opt2 = cls(m2.parameters(), **path_kwargs, **kwargs)
                        set_optimizer_state_dict(m2, opt2, osd)
                        ulp, same_layout = 0, True
                        for p, p2 in zip(m.parameters(), m2.parameters()):
                            same_layout &= _layout(opt.state[p]) == _layout(opt2.state[p2])
                            for k, v in opt.state[p].items():
                                if torch.is_tensor(v):
                                    ulp = max(ulp, _ulp_distance(full(v), full(opt2.state[p2][k])))
                        results["dcp"][f"{name}#{i}/{path}"] = {"max_ulp": ulp,
                                                                "same_layout": same_layout}
                except Exception:  # noqa: BLE001 -- reported per case by the tests
                    rec["error"] = traceback.format_exc(limit=6)
                rec["seconds"] = time.perf_counter() - t0
                results["cases"][key] = rec

    # fused=True where a gradient's placement differs from its parameter's (replicated
    # parameters, sharded gradients): no local-shard kernel, the foreach path instead
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor, init_device_mesh

    rec = {"max_ulp": 0, "problems": [], "error": None}
    try:
        mesh = init_device_mesh("cpu", (WORLD_SIZE,))
        torch.manual_seed(0)
        full_params = [torch.randn(5, 7), torch.randn(3)]
        ps = [torch.nn.Parameter(distribute_tensor(t, mesh, [Replicate()])) for t in full_params]
        qs = [torch.nn.Parameter(t.clone()) for t in full_params]
        # the reference is the foreach path the fallback takes (the kernels agree within the
        # bound, not bitwise)
        opt, ref_opt = ours.Adam(ps, fused=True), ours.Adam(qs, foreach=True)
        for step in range(STEPS):
            g = torch.Generator().manual_seed(step)
            for p, q in zip(ps, qs):
                q.grad = torch.randn(q.shape, generator=g)
                p.grad = distribute_tensor(q.grad.clone(), mesh, [Shard(0)])
            opt.step()
            ref_opt.step()
            compare(rec, list(zip(ps, qs)), opt, ref_opt, local_only=False)
    except Exception:  # noqa: BLE001
        rec["error"] = traceback.format_exc(limit=6)
    results["fused_mismatched_placements"] = rec

    # the raw kernel never dereferences a DTensor (it has no memory of its own): a clear error
    from optproof.torch_impl.fused import cpu as fused_cpu

    fused_cpu.load()
    p = next(sharded(model()).parameters())
    try:
        fused_cpu.step("sgd", 0, 0, [p.detach()], [p.detach().clone()], [], [], [0.0] * 16, [])
        results["raw_dtensor"] = "no error"
    except RuntimeError as e:
        results["raw_dtensor"] = str(e)

    # foreach=None must treat DTensor params as torch does (torch.distributed.tensor appends
    # DTensor to torch.optim.optimizer._foreach_supported_types); CPU is not a foreach device
    # for either, so pretend it is for both to compare the decisions.
    import torch.optim.optimizer as topt_mod

    params = list(sharded(model()).parameters())
    saved = (topt_mod._get_foreach_kernels_supported_devices, _base.foreach_supported_devices)
    topt_mod._get_foreach_kernels_supported_devices = lambda: ["cpu"]
    _base.foreach_supported_devices = lambda: ["cpu"]
    try:
        results["default_foreach"] = {
            "ours": _base._default_foreach(params),
            "torch": topt_mod._default_to_fused_or_foreach(params, False, False)[1],
        }
    finally:
        topt_mod._get_foreach_kernels_supported_devices, _base.foreach_supported_devices = saved

    dist.barrier()
    dist.destroy_process_group()
    Path(os.environ["OPTPROOF_DIST_OUT"], f"rank{rank}.json").write_text(json.dumps(results))


# =========================================================================== the launcher


def _skip_reason() -> str | None:
    import torch.distributed as dist

    if not dist.is_available():
        return "torch.distributed is not available in this torch build"
    if not dist.is_gloo_available():
        return "the gloo backend is not available in this torch build"
    try:  # (ZeroRedundancyOptimizer is imported by the workers only: its module is slow)
        from torch.distributed.fsdp import fully_shard  # noqa: F401
        from torch.distributed.tensor import DTensor  # noqa: F401
    except ImportError as e:
        return f"FSDP2 (fully_shard) / DTensor not importable: {e}"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(out: Path) -> tuple[list[int], list[str], float]:
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               WORLD_SIZE=str(WORLD_SIZE), OPTPROOF_DIST_OUT=str(out), OMP_NUM_THREADS="1")
    if "lo" in {name for _, name in socket.if_nameindex()}:
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # keep gloo's own sockets on loopback
    t0 = time.monotonic()
    procs, logs = [], []
    for rank in range(WORLD_SIZE):
        log = open(out / f"rank{rank}.log", "w+")  # noqa: SIM115 -- closed below
        logs.append(log)
        procs.append(subprocess.Popen(
            [sys.executable, __file__], env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)),
            stdout=log, stderr=subprocess.STDOUT))
    deadline = t0 + JOB_TIMEOUT_S
    try:
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    finally:
        for p in procs:  # never leave a rank behind
            if p.poll() is None:
                p.kill()
                p.wait()
    texts = []
    for log in logs:
        log.seek(0)
        texts.append(log.read()[-4000:])
        log.close()
    return [p.returncode for p in procs], texts, time.monotonic() - t0


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from optproof.torch_impl.fused import cpu as fused_cpu

    fused_cpu.load()  # compiled here once, so the ranks only load the cached extension
    for attempt in range(2):  # a second try only if someone grabbed the free port meanwhile
        out = tmp_path_factory.mktemp("dist")
        codes, logs, seconds = _launch(out)
        if codes == [0] * WORLD_SIZE or "Address already in use" not in "".join(logs):
            break
    if codes != [0] * WORLD_SIZE:
        pytest.fail(f"distributed job failed (exit codes {codes}, {seconds:.1f} s; "
                    f"killed after {JOB_TIMEOUT_S} s if still running):\n"
                    + "\n".join(f"--- rank {r} ---\n{t}" for r, t in enumerate(logs)))
    results = [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    print(f"\ndistributed job: {seconds:.1f} s wall for {WORLD_SIZE} ranks")
    return results


PARAMS = [
    pytest.param(mode, i, path, id=case_key(mode, i, path))
    for mode in MODES for i in range(len(CASES)) for path in PATHS
]


@pytest.mark.parametrize(("mode", "i", "path"), PARAMS)
def test_sharded_equals_single_process_bitwise(job, mode, i, path):
    key = case_key(mode, i, path)
    for res in job:
        rec = res["cases"][key]
        assert rec["error"] is None, f"rank {res['rank']}:\n{rec['error']}"
        assert rec["problems"] == [], f"rank {res['rank']}: {rec['problems']}"
        assert rec["max_ulp"] == 0, f"rank {res['rank']}: max {rec['max_ulp']} ULP"


LAYOUT_CASES = [pytest.param(i, path, id=f"{n}#{i}/{path}") for i, (n, _) in enumerate(CASES)
                for path in CHECKPOINTED if path == "loop" or n in TORCH_FUSED]
DCP_CASES = [pytest.param(i, path, id=f"{n}#{i}/{path}") for i, (n, _) in enumerate(CASES)
             for path in CHECKPOINTED]


@pytest.mark.parametrize(("i", "path"), LAYOUT_CASES)
def test_state_layout_matches_torch_under_fsdp2(job, i, path):
    """DTensor state for param-shaped entries, plain 0-d CPU ``step`` (and ``mu_product``),
    on the empty shard too -- what torch.optim's same path creates, but for the μ-product's
    dtype: optproof keeps it in float64, torch in its default dtype (deviation D1)."""
    key = f"{CASES[i][0]}#{i}/{path}"
    for res in job:
        ours, theirs = res["layout"][key]["ours"], res["layout"][key]["torch"]
        if "mu_product" in ours:
            assert ours["mu_product"][1] == "torch.float64", f"rank {res['rank']}"
            ours = {**ours, "mu_product": [*ours["mu_product"][:1], theirs["mu_product"][1],
                                           *ours["mu_product"][2:]]}
        assert ours == theirs, f"rank {res['rank']}"


@pytest.mark.parametrize(("i", "path"), DCP_CASES)
def test_fsdp2_checkpoint_round_trip(job, i, path):
    """get_optimizer_state_dict / set_optimizer_state_dict restore our state bitwise."""
    for res in job:
        rec = res["dcp"][f"{CASES[i][0]}#{i}/{path}"]
        assert rec == {"max_ulp": 0, "same_layout": True}, f"rank {res['rank']}"


def test_fused_with_mismatched_placements_falls_back_bitwise(job):
    for res in job:
        rec = res["fused_mismatched_placements"]
        assert rec["error"] is None, f"rank {res['rank']}:\n{rec['error']}"
        assert rec["problems"] == [] and rec["max_ulp"] == 0, f"rank {res['rank']}: {rec}"


def test_raw_kernel_rejects_a_dtensor_with_a_clear_error(job):
    for res in job:
        assert "tensor without CPU memory" in res["raw_dtensor"], res["raw_dtensor"]


def test_default_foreach_treats_dtensor_like_torch(job):
    for res in job:
        assert res["default_foreach"] == {"ours": True, "torch": True}


if __name__ == "__main__":
    _worker()
