"""Layer stacks → nn.Sequential, with shapes from the spec's pure-Python inference.

Each layer type has one builder here, registered under the same key as its spec class
(archsearch.spec.layers), so a layer's schema and its module are one hop apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

from archsearch.build.blocks import (
    CBAM, DepthwiseSeparableConv, FastDropout, Flatten, Residual, SqueezeExcite, Stack, projection,
)
from archsearch.build.factories import create_act, init_weights
from archsearch.spec import layers as L
from archsearch.spec.base import Shape
from archsearch.spec.model import ModelSpec


@dataclass(frozen=True)
class Ctx:
    num_classes: int
    init: str


Builder = Callable[[L.LayerBase, Shape, Ctx], nn.Module]
_BUILDERS: dict[str, Builder] = {}


def register(type_name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        if type_name in _BUILDERS:
            raise RuntimeError(f"layer type {type_name!r} registered twice")
        if type_name not in L.LAYER_TYPES:
            raise RuntimeError(f"layer type {type_name!r} has no spec class")
        _BUILDERS[type_name] = fn
        return fn

    return deco


def build_layer(spec: L.LayerBase, shape: Shape, ctx: Ctx) -> nn.Module:
    return _BUILDERS[spec.type](spec, shape, ctx)


def build_stack(layers: list[L.LayerBase], shape: Shape, ctx: Ctx) -> nn.Sequential:
    modules = []
    for layer in layers:
        modules.append(build_layer(layer, shape, ctx))
        shape = layer.out_shape(shape, ctx.num_classes)
    if modules and hasattr(modules[0], "inplace"):
        modules[0].inplace = False  # never overwrite the tensor a stack receives (its input)
    return Stack(*modules)


@register("conv2d")
def _conv(s: L.Conv2d, shape: Shape, ctx: Ctx) -> nn.Module:
    in_ch = shape[0]
    if s.depthwise:
        m: nn.Module = DepthwiseSeparableConv(
            in_ch, s.out, s.kernel, s.stride, s.paddings(), s.dilation, bias=s.bias
        )
    else:
        m = nn.Conv2d(in_ch, s.out, s.kernel, s.stride, s.paddings(), s.dilation, s.groups, bias=s.bias)
    init_weights(m, s.init or ctx.init)
    return m


@register("batchnorm")
def _bn(s: L.BatchNorm, shape: Shape, ctx: Ctx) -> nn.Module:
    cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    return cls(shape[0], eps=s.eps, momentum=s.momentum)


@register("activation")
def _act(s: L.ActivationLayer, shape: Shape, ctx: Ctx) -> nn.Module:
    act = create_act(s.fn, s.slope, s.alpha)
    if isinstance(act, (nn.ReLU, nn.LeakyReLU)):
        act.inplace = True  # saves a copy per call; build_stack turns it off for a stack's first layer
    return act


@register("maxpool")
def _maxpool(s: L.MaxPool, shape: Shape, ctx: Ctx) -> nn.Module:
    return nn.MaxPool2d(s.kernel, s.stride, s.padding)


@register("avgpool")
def _avgpool(s: L.AvgPool, shape: Shape, ctx: Ctx) -> nn.Module:
    return nn.AvgPool2d(s.kernel, s.stride, s.padding)


@register("global_avg_pool")
def _gap(s: L.GlobalAvgPool, shape: Shape, ctx: Ctx) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


@register("dropout")
def _dropout(s: L.Dropout, shape: Shape, ctx: Ctx) -> nn.Module:
    return FastDropout(s.p)


@register("dropout2d")
def _dropout2d(s: L.Dropout2d, shape: Shape, ctx: Ctx) -> nn.Module:
    return nn.Dropout2d(s.p)


@register("flatten")
def _flatten(s: L.Flatten, shape: Shape, ctx: Ctx) -> nn.Module:
    return Flatten()


@register("linear")
def _linear(s: L.Linear, shape: Shape, ctx: Ctx) -> nn.Module:
    m = nn.Linear(shape[0], s.out if s.out is not None else ctx.num_classes, bias=s.bias)
    init_weights(m, s.init or ctx.init)
    return m


@register("residual")
def _residual(s: L.Residual, shape: Shape, ctx: Ctx) -> nn.Module:
    body = build_stack(s.body, shape, ctx)
    out = L.stack_shapes(s.body, shape, ctx.num_classes)[-1]
    shortcut = None
    if s.shortcut == "projection" or out != shape:
        shortcut = projection(shape[0], out[0], L.projection_stride(shape, out))
        init_weights(shortcut, ctx.init)
    return Residual(body, shortcut)


@register("cbam")
def _cbam(s: L.CBAM, shape: Shape, ctx: Ctx) -> nn.Module:
    return CBAM(shape[0], s.reduction, s.spatial_kernel)


@register("se")
def _se(s: L.SE, shape: Shape, ctx: Ctx) -> nn.Module:
    return SqueezeExcite(shape[0], s.reduction)


@register("repeat")
def _repeat(s: L.Repeat, shape: Shape, ctx: Ctx) -> nn.Module:
    copies = []
    for _ in range(s.n):
        copies.append(build_stack(s.layers, shape, ctx))
        shape = L.stack_shapes(s.layers, shape, ctx.num_classes)[-1]
    return nn.Sequential(*copies)


def build_stack_model(model: ModelSpec) -> nn.Sequential:
    """The custom network of a `layers:` spec (shapes already checked by the spec)."""
    assert model.layers is not None
    return build_stack(model.layers, model.input_shape, Ctx(model.num_classes, model.init))


missing = set(L.LAYER_TYPES) - set(_BUILDERS)
if missing:  # pragma: no cover - a developer error caught at import
    raise RuntimeError(f"layer types without a builder: {sorted(missing)}")
del missing
