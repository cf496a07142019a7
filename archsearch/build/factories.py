"""Name → class maps for activations and weight initialisers, with get_/create_ pairs."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch.nn as nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "prelu": nn.PReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def get_act_layer(name: str, slope: float | None = None, alpha: float | None = None) -> Callable[[], nn.Module]:
    """A zero-argument constructor for the named activation (so blocks can make as many as they need)."""
    try:
        cls = _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of: {', '.join(_ACTIVATIONS)}") from None
    if name == "leaky_relu":
        return partial(cls, negative_slope=0.01 if slope is None else slope)
    if name == "elu":
        return partial(cls, alpha=1.0 if alpha is None else alpha)
    if name in ("relu",):
        return partial(cls, inplace=False)
    return cls


def create_act(name: str, slope: float | None = None, alpha: float | None = None) -> nn.Module:
    return get_act_layer(name, slope, alpha)()


def _he_normal(m: nn.Module) -> None:
    nn.init.kaiming_normal_(m.weight, mode="fan_out" if isinstance(m, nn.Conv2d) else "fan_in", nonlinearity="relu")


def _he_uniform(m: nn.Module) -> None:
    nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")


def _xavier_uniform(m: nn.Module) -> None:
    nn.init.xavier_uniform_(m.weight)


def _xavier_normal(m: nn.Module) -> None:
    nn.init.xavier_normal_(m.weight)


_INITS: dict[str, Callable[[nn.Module], None] | None] = {
    "default": None,
    "he_normal": _he_normal,
    "he_uniform": _he_uniform,
    "xavier": _xavier_uniform,
    "xavier_normal": _xavier_normal,
}


def init_weights(module: nn.Module, name: str) -> None:
    """Initialise the conv/linear weights inside `module` (biases → 0) with the named scheme."""
    fn = _INITS.get(name)
    if name not in _INITS:
        raise ValueError(f"unknown init {name!r}; expected one of: {', '.join(_INITS)}")
    if fn is None:
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fn(m)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
