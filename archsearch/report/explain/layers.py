"""Which modules of a built model an explanation looks at: conv layers, the Grad-CAM target, the classifier.

Works on any module archsearch builds (layer stacks, torchvision ResNets and their variants) by
walking `named_modules()`; names are the qualified names PyTorch gives (`4`, `2.body.0`,
`layer4.1.conv2`), the same names `--layer` accepts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

from archsearch.build.blocks import CBAM, SqueezeExcite
from archsearch.errors import ArchsearchError

_ATTENTION = (CBAM, SqueezeExcite)  # their 1×1 / 7×7 convs gate features, they are not feature maps
_SHORTCUTS = ("shortcut", "downsample")  # residual side branches (ours, torchvision's)


class ExplainError(ArchsearchError):
    """A model or option an explanation cannot work with (no conv layer, unknown --layer, ...)."""


def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    """The Conv2d modules that produce feature maps, by qualified name, in registration order.

    Convs inside attention blocks (CBAM, squeeze-and-excitation) are left out: they compute gates,
    not features.
    """
    gates = [name for name, m in model.named_modules() if isinstance(m, _ATTENTION)]
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and not any(name == g or name.startswith(g + ".") for g in gates)
    }


def _on_shortcut(name: str) -> bool:
    return any(part in _SHORTCUTS for part in name.split("."))


def default_layer(model: nn.Module) -> str:
    """Name of the last conv layer on the main path (shortcut projections skipped): Grad-CAM's default."""
    main = [name for name in conv_layers(model) if not _on_shortcut(name)]
    if not main:
        raise ExplainError(_no_conv_message(model))
    return main[-1]


def _no_conv_message(model: nn.Module) -> str:
    kinds = ", ".join(dict.fromkeys(type(m).__name__ for m in model.modules() if not list(m.children())))
    return (
        f"this model has no Conv2d layer (its layers: {kinds or 'none'}), so Grad-CAM, filters and feature "
        "maps cannot be drawn; choose other figures, e.g. --only correlation --only gallery --only embedding"
    )


def find_layer(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """The Grad-CAM target: `name` (any module whose output is a [N, C, H, W] map), else the last conv.

    Raises:
        ExplainError: the model has no conv layer, or no module is called `name` (the message lists
            the conv layers).
    """
    convs = conv_layers(model)
    if not convs:
        raise ExplainError(_no_conv_message(model))
    if name is None:
        name = default_layer(model)
        return name, convs[name]
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        raise ExplainError(f"--layer {name!r}: no module of that name; conv layers: {', '.join(convs)}")
    return name, modules[name]


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first conv layer (the one that sees the image)."""
    convs = conv_layers(model)
    if not convs:
        raise ExplainError(_no_conv_message(model))
    name = next(iter(convs))
    return name, convs[name]


def classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    """The last nn.Linear (the classifier); its input is the model's penultimate representation.

    Raises:
        ExplainError: the model has no Linear layer.
    """
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ExplainError(
            "this model has no Linear layer, so it has no penultimate representation (the input of "
            "the last Linear layer) for the correlation matrix and the 2-D maps"
        )
    return linears[-1]


@contextmanager
def capture_input(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """While active, every call of `module` appends a detached copy of its (flattened) input."""
    seen: list[torch.Tensor] = []

    def hook(_m: nn.Module, args: tuple) -> None:
        seen.append(args[0].detach().flatten(1).clone())

    handle = module.register_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


@contextmanager
def capture_outputs(modules: dict[str, nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    """While active, the output of each named module's last call, detached and copied at once
    (so a following in-place activation cannot change it)."""
    seen: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in modules.items():
        def hook(_m: nn.Module, _args: tuple, out: torch.Tensor, name: str = name) -> None:
            seen[name] = out.detach().clone()

        handles.append(module.register_forward_hook(hook))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()
