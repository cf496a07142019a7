"""One pydantic class per layer type, a discriminated union on `type`, and pure-Python shape rules.

Shapes never need torch: each layer class knows how it maps an input shape ([C, H, W] or [F]) to
its output shape and raises ShapeProblem when it cannot. The model validator walks the stack with
these rules so a spec that cannot propagate is rejected before anything is built.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from archsearch.spec.base import PositiveInt, Probability, Shape, StrictModel, fmt_shape

ACTIVATIONS = ("relu", "leaky_relu", "gelu", "elu", "prelu", "silu", "tanh")
Activation = Literal["relu", "leaky_relu", "gelu", "elu", "prelu", "silu", "tanh"]
Init = Literal["default", "he_normal", "he_uniform", "xavier", "xavier_normal"]
IntPair = Union[PositiveInt, tuple[PositiveInt, PositiveInt]]


class ShapeProblem(Exception):
    """A layer cannot take the shape it is given. `path` is relative to the layer (e.g. ('body', 2))."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _need_image(shape: Shape, what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeProblem(f"{what} needs an image input [C, H, W], got {fmt_shape(shape)}")
    return shape  # type: ignore[return-value]


def _window(size: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


class LayerBase(StrictModel):
    """Base of every layer spec. Subclasses set `type` and implement `out_shape`."""

    type: str

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:  # pragma: no cover - abstract
        raise NotImplementedError


class Conv2d(LayerBase):
    """2-D convolution. `padding: same` keeps H×W at stride 1 (odd kernels); `depthwise` makes it
    depthwise-separable (k×k per-channel conv, then 1×1 to `out`)."""

    type: Literal["conv2d"]
    out: PositiveInt
    kernel: IntPair = 3
    stride: IntPair = 1
    padding: Union[Annotated[int, Field(ge=0)], Literal["same", "valid"]] = "same"
    dilation: PositiveInt = 1
    groups: PositiveInt = 1
    depthwise: bool = False
    bias: bool = True
    init: Init | None = None

    @model_validator(mode="after")
    def _same_needs_odd_kernel(self) -> "Conv2d":
        if self.padding == "same" and any(k % 2 == 0 for k in _pair(self.kernel)):
            raise ValueError("padding 'same' needs an odd kernel; give an explicit padding")
        return self

    @model_validator(mode="after")
    def _depthwise_excludes_groups(self) -> "Conv2d":
        if self.depthwise and self.groups != 1:
            raise ValueError("depthwise sets the groups itself; drop `groups`")
        return self

    def paddings(self) -> tuple[int, int]:
        kh, kw = _pair(self.kernel)
        if self.padding == "same":
            return (self.dilation * (kh - 1) // 2, self.dilation * (kw - 1) // 2)
        if self.padding == "valid":
            return (0, 0)
        return (self.padding, self.padding)

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:
        c, h, w = _need_image(shape, "conv2d")
        if self.groups > 1 and (c % self.groups or self.out % self.groups):
            raise ShapeProblem(
                f"groups={self.groups} must divide both the input channels ({c}) and out ({self.out})"
            )
        (kh, kw), (sh, sw), (ph, pw) = _pair(self.kernel), _pair(self.stride), self.paddings()
        oh, ow = _window(h, kh, sh, ph, self.dilation), _window(w, kw, sw, pw, self.dilation)
        if oh < 1 or ow < 1:
            raise ShapeProblem(
                f"input {fmt_shape(shape)} is too small for kernel {kh}×{kw} with padding {ph}"
            )
        return (self.out, oh, ow)


class BatchNorm(LayerBase):
    """Batch normalisation over channels ([C, H, W]) or features ([F])."""

    type: Literal["batchnorm"]
    momentum: Annotated[float, Field(gt=0, le=1)] = 0.1
    eps: Annotated[float, Field(gt=0)] = 1e-5

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:
        return shape


class ActivationLayer(LayerBase):
    """A non-linearity. `slope` is leaky_relu's negative slope, `alpha` elu's."""

    type: Literal["activation"]
    fn: Activation = "relu"
    slope: Annotated[float, Field(ge=0)] | None = None
    alpha: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _slope_only_for_leaky(self) -> "ActivationLayer":
        if self.slope is not None and self.fn != "leaky_relu":
            raise ValueError(f"slope applies to leaky_relu only, not {self.fn}")
        if self.alpha is not None and self.fn != "elu":
            raise ValueError(f"alpha applies to elu only, not {self.fn}")
        return self

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:
        return shape


class _Pool(LayerBase):
    kernel: IntPair = 2
    stride: IntPair | None = None
    padding: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _padding_at_most_half_kernel(self) -> "_Pool":
        if self.padding > min(_pair(self.kernel)) // 2:
            raise ValueError("padding must be at most half the kernel size")
        return self

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:
        c, h, w = _need_image(shape, self.type)
        kh, kw = _pair(self.kernel)
        sh, sw = _pair(self.stride) if self.stride is not None else (kh, kw)
        oh, ow = _window(h, kh, sh, self.padding), _window(w, kw, sw, self.padding)
        if oh < 1 or ow < 1:
            raise ShapeProblem(f"input {fmt_shape(shape)} is too small for a {kh}×{kw} pool")
        return (c, oh, ow)


class MaxPool(_Pool):
    """Max pooling; stride defaults to the kernel."""

    type: Literal["maxpool"]


class AvgPool(_Pool):
    """Average pooling; stride defaults to the kernel."""

    type: Literal["avgpool"]


class GlobalAvgPool(LayerBase):
    """Mean over H×W: [C, H, W] → [C] (flattened)."""

    type: Literal["global_avg_pool"]

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:
        c, _, _ = _need_image(shape, "global_avg_pool")
        return (c,)


class Dropout(LayerBase):
    """Element-wise dropout with probability p."""

    type: Literal["dropout"]
    p: Probability = 0.5

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:
        return shape


class Dropout2d(LayerBase):
    """Channel-wise dropout with probability p (image inputs)."""

    type: Literal["dropout2d"]
    p: Probability = 0.5

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:
        _need_image(shape, "dropout2d")
        return shape


class Flatten(LayerBase):
    """[C, H, W] → [C·H·W]."""

    type: Literal["flatten"]

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:
        n = 1
        for s in shape:
            n *= s
        return (n,)


class Linear(LayerBase):
    """Fully connected layer on a flat input. Without `out` it is the classifier: out = num_classes."""

    type: Literal["linear"]
    out: PositiveInt | None = None
    bias: bool = True
    init: Init | None = None

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:
        if len(shape) != 1:
            raise ShapeProblem(
                f"linear needs a flat input, got {fmt_shape(shape)}; add a flatten or global_avg_pool before it"
            )
        return (self.out if self.out is not None else num_classes,)


class Residual(LayerBase):
    """y = body(x) + shortcut(x). shortcut `auto` is the identity when shapes match, else a 1×1
    conv + batchnorm projection (stride taken from the spatial reduction)."""

    type: Literal["residual"]
    body: Annotated[list["Layer"], Field(min_length=1)]
    shortcut: Literal["auto", "identity", "projection"] = "auto"

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:
        out = stack_shapes(self.body, shape, num_classes, prefix=("body",))[-1]
        if self.shortcut == "identity" and out != shape:
            raise ShapeProblem(
                f"identity shortcut needs the body to keep the shape {fmt_shape(shape)}, "
                f"but it gives {fmt_shape(out)}; use shortcut: projection"
            )
        if self.shortcut == "projection" or out != shape:
            projection_stride(shape, out)
        return out


def projection_stride(inp: Shape, out: Shape) -> int:
    """The stride of the 1×1 projection that maps `inp` onto `out`'s spatial size."""
    if len(inp) != 3 or len(out) != 3:
        raise ShapeProblem(
            f"a projection shortcut needs image shapes, got {fmt_shape(inp)} → {fmt_shape(out)}"
        )
    stride = max(1, inp[1] // out[1])
    if (inp[1] - 1) // stride + 1 != out[1] or (inp[2] - 1) // stride + 1 != out[2]:
        raise ShapeProblem(
            f"no 1×1 strided projection maps {fmt_shape(inp)} onto the body's {fmt_shape(out)}"
        )
    return stride


class CBAM(LayerBase):
    """Convolutional Block Attention Module: channel attention (shared MLP over avg- and max-pooled
    features) then spatial attention (k×k conv over [avg; max] along channels)."""

    type: Literal["cbam"]
    reduction: PositiveInt = 16
    spatial_kernel: PositiveInt = 7

    @field_validator("spatial_kernel")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("spatial_kernel must be odd")
        return v

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:
        _need_image(shape, "cbam")
        return shape


class SE(LayerBase):
    """Squeeze-and-Excitation channel attention."""

    type: Literal["se"]
    reduction: PositiveInt = 16

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:
        _need_image(shape, "se")
        return shape


class Repeat(LayerBase):
    """A sub-stack repeated n times (each copy has its own weights)."""

    type: Literal["repeat"]
    n: PositiveInt
    layers: Annotated[list["Layer"], Field(min_length=1)]

    def out_shape(self, shape: Shape, num_classes: int) -> Shape:
        for i in range(self.n):
            try:
                shape = stack_shapes(self.layers, shape, num_classes, prefix=("layers",))[-1]
            except ShapeProblem as e:
                raise ShapeProblem(f"{e.message} (repetition {i + 1} of {self.n})", e.path) from None
        return shape


Layer = Annotated[
    Union[
        Conv2d,
        BatchNorm,
        ActivationLayer,
        MaxPool,
        AvgPool,
        GlobalAvgPool,
        Dropout,
        Dropout2d,
        Flatten,
        Linear,
        Residual,
        CBAM,
        SE,
        Repeat,
    ],
    Field(discriminator="type"),
]

LAYER_TYPES: tuple[str, ...] = (
    "conv2d", "batchnorm", "activation", "maxpool", "avgpool", "global_avg_pool", "dropout",
    "dropout2d", "flatten", "linear", "residual", "cbam", "se", "repeat",
)  # fmt: skip

Residual.model_rebuild()
Repeat.model_rebuild()


MAX_LAYERS = 10_000  # layers of a stack with repeats multiplied out: shape checks and builds stay bounded


def count_layers(layers: list[LayerBase]) -> int:
    """Layers in a stack once every repeat is multiplied out (a residual counts with its body)."""
    n = 0
    for layer in layers:
        if isinstance(layer, Repeat):
            n += layer.n * count_layers(layer.layers)
        elif isinstance(layer, Residual):
            n += 1 + count_layers(layer.body)
        else:
            n += 1
    return n


def stack_shapes(
    layers: list[LayerBase], shape: Shape, num_classes: int, prefix: tuple[str | int, ...] = ()
) -> list[Shape]:
    """Shapes after each layer of a stack, starting with the input. Raises ShapeProblem whose path
    names the failing layer relative to the stack's owner (prefix + index + inner path)."""
    shapes = [shape]
    for i, layer in enumerate(layers):
        try:
            shape = layer.out_shape(shape, num_classes)
        except ShapeProblem as e:
            raise ShapeProblem(e.message, (*prefix, i, *e.path)) from None
        shapes.append(shape)
    return shapes
