"""Rule families: which registered variants compete in one audit, and how a target names one.

An audit compares a target with every variant of its *group* (the rules a user could mean by
the same optimizer name), not only those sharing the spec's ``family`` prefix: an ``AdamW``
that applies L2 decay is caught because the ``adam`` variant, not ``adamw``, reproduces it.

```text
=========  =====================================================================================
group      variants (registered in ``optproof.derivations.specs``)
=========  =====================================================================================
adam       adam, adamw, adamw:paper, adamw:fully-decoupled, adamw:decay-after, adam:eps-hat,
           adam:amsgrad-reddi, adam:eps-root, adamw:eps-root, adam:amsgrad-optax
sgd        sgd, sgdw, sgd:sutskever, sgd:optax-trace
adagrad    adagrad, adagrad:keras
adadelta   adadelta
rmsprop    rmsprop, rmsprop:eps-inside, rmsprop:lr-in-momentum, rmsprop:keras-centered
nadam      nadam, nadam:keras3, nadam:optax, nadamw:optax, nadamw:timm
=========  =====================================================================================
```

A torch-style class (a ``torch.optim.Optimizer`` subclass taking torch.optim's keywords) is
expected to follow the torch.optim variant whose class it is or inherits (`infer_rule`); a
variant that takes a structural switch implicitly (``adamw`` is decoupled, ``adam:amsgrad-reddi`` is
AMSGrad) lists it in `IMPLIED`.
"""

from __future__ import annotations

from collections.abc import Mapping

from optproof.derivations import Spec, rule, rules

__all__ = ["GROUPS", "IMPLIED", "TORCH_CLASSES", "group_of", "variants", "infer_rule",
           "TORCH_VARIANT"]

GROUPS: dict[str, tuple[str, ...]] = {
    "adam": ("adam", "adamw", "adamw:paper", "adamw:fully-decoupled", "adamw:decay-after",
             "adam:eps-hat", "adam:amsgrad-reddi", "adam:eps-root", "adamw:eps-root",
             "adam:amsgrad-optax"),
    "sgd": ("sgd", "sgdw", "sgd:sutskever", "sgd:optax-trace"),
    "adagrad": ("adagrad", "adagrad:keras"),
    "adadelta": ("adadelta",),
    "rmsprop": ("rmsprop", "rmsprop:eps-inside", "rmsprop:lr-in-momentum",
                "rmsprop:keras-centered"),
    "nadam": ("nadam", "nadam:keras3", "nadam:optax", "nadamw:optax", "nadamw:timm"),
}

#: the torch.optim variant of each spec family (what a torch-style class of that name follows)
TORCH_VARIANT = {"adam": "adam", "adamw": "adamw", "sgd": "sgd", "sgdw": "sgdw",
                 "adagrad": "adagrad", "adadelta": "adadelta", "rmsprop": "rmsprop",
                 "nadam": "nadam"}

#: switches a variant has built in (it takes no keyword for them): ``{variant: {flag: value}}``
IMPLIED: dict[str, dict[str, bool]] = {
    "adamw": {"decoupled_weight_decay": True},
    "adamw:paper": {"decoupled_weight_decay": True},
    "adamw:fully-decoupled": {"decoupled_weight_decay": True},
    "adamw:decay-after": {"decoupled_weight_decay": True},
    "sgdw": {"decoupled_weight_decay": True},
    "adam:amsgrad-reddi": {"amsgrad": True},
    "adam:amsgrad-optax": {"amsgrad": True},
    "adamw:eps-root": {"decoupled_weight_decay": True},
    "nadamw:optax": {"decoupled_weight_decay": True},
    "nadamw:timm": {"decoupled_weight_decay": True},
}


def group_of(name: str) -> str:
    """The group of a registered rule name (``adamw:paper`` → ``adam``)."""
    for group, names in GROUPS.items():
        if name in names:
            return group
    spec = rule(name)  # raises ValueError naming the closest rule for an unknown name
    return spec.family


def variants(group: str) -> tuple[Spec, ...]:
    """The registered specs of ``group``, in the table's order, plus any registered later
    whose family prefix belongs to the group."""
    names = list(GROUPS.get(group, ()))
    families = {n.split(":")[0] for n in names} or {group}
    names += [s.name for s in rules() if s.family in families and s.name not in names]
    return tuple(rule(n) for n in names)


#: torch.optim's audited classes by name: a target is inferred to follow one of these only
#: when its class, or a class it inherits from, has exactly that name
TORCH_CLASSES = {"Adam": "adam", "AdamW": "adamw", "SGD": "sgd", "Adagrad": "adagrad",
                 "Adadelta": "adadelta", "RMSprop": "rmsprop", "NAdam": "nadam"}


def infer_rule(names: list[str]) -> str | None:
    """The torch variant named by the first of ``names`` (a class name and its bases) that
    is exactly one of torch.optim's audited classes (`TORCH_CLASSES`): ``AdamW`` →
    ``adamw``, a subclass of ``torch.optim.SGD`` → ``sgd``. Nothing is read into a name
    that merely contains one: ``RAdam``, ``Adamax``, ``SparseAdam``, ``ASGD`` and
    ``NaNAdamW`` follow other rules (or none registered), and ``None`` makes the audit ask
    for ``--rule``."""
    return next((TORCH_CLASSES[n] for n in names if n in TORCH_CLASSES), None)


def implied(name: str) -> Mapping[str, bool]:
    return IMPLIED.get(name, {})
