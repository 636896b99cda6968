"""optproof.torch_impl: production ``torch.optim.Optimizer`` implementations.

Drop-in replacements for the torch.optim 2.13 classes of the same name (same
constructor signatures, defaults, validation messages, ``param_groups`` keys and
state layout, so state_dicts load both ways), plus an optional
``decoupled_weight_decay`` switch on every class.  See ``_base.py`` for the
shared design (for-loop / foreach backends, capturable, precision policy).

Sharded training: the optimizers work, as torch.optim's do, on the DTensor
parameters of FSDP2 (``torch.distributed.fsdp.fully_shard``; build the
optimizer after sharding) and as ``ZeroRedundancyOptimizer(params,
optimizer_class=Adam, ...)``.  Param-shaped state (``exp_avg``, ``sum``, ...)
is created with ``zeros_like``/``full_like(p)`` and so is a DTensor with the
param's placements; ``step`` (and NAdam's ``mu_product``) stays a plain 0-d
CPU tensor, identical on every rank, so the step-size scalars are the same
Python floats everywhere.  Both backends run on DTensors (the ``_foreach_*``
ops included), and ``foreach=None`` treats DTensor like torch does.  Every
rule is elementwise, so given the same (reduced) gradients a sharded step is
bitwise equal to the unsharded one; sharding changes only how the gradients
are reduced.  ``tests/test_distributed.py`` checks this on 2 gloo processes,
as well as the ``torch.distributed.checkpoint.state_dict`` round trip.
"""

from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .nadam import NAdam
from .param_groups import param_groups_no_decay
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "NAdam",
    "RMSprop",
    "SGD",
    "param_groups_no_decay",
]
