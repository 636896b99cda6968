"""optproof.torch_impl: production ``torch.optim.Optimizer`` implementations.

Drop-in replacements for the torch.optim 2.13 classes of the same name (same
constructor signatures, defaults, validation messages, ``param_groups`` keys and
state layout, so state_dicts load both ways), plus an optional
``decoupled_weight_decay`` switch on every class.  See ``_base.py`` for the
shared design (for-loop / foreach backends, capturable, precision policy).
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
