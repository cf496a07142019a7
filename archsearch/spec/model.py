"""The `model:` section: a layer stack with inferred shapes, or a torchvision ResNet with variants."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from archsearch.spec.base import PositiveInt, Probability, Shape, StrictModel, fmt_shape
from archsearch.spec.layers import MAX_LAYERS, Activation, Init, Layer, ShapeProblem, count_layers, stack_shapes

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
Stage = Literal["stem", "layer1", "layer2", "layer3", "layer4"]


class HeadSpec(StrictModel):
    """Classifier on top of a backbone: optional hidden layers, dropout before each linear."""

    dropout: Probability = 0.0
    hidden: list[PositiveInt] = []


class BackboneSpec(StrictModel):
    """A torchvision ResNet and its variants (built on torchvision's classes, not re-implemented)."""

    name: Literal["resnet18", "resnet34", "resnet50", "resnet101"]
    pretrained: str = Field(
        "none", description="none | imagenet | path to a state_dict file (.pt/.pth)"
    )
    in_channels: PositiveInt | None = Field(
        None,
        description="input channels; defaults to model.input[0]. With pretrained weights and 1 "
        "channel the stem filters are summed over RGB.",
    )
    small_input: bool = Field(
        False, description="3×3 stride-1 stem without maxpool, for 28×28 / 32×32 images"
    )
    freeze: list[Stage] = Field(
        [], description="stages whose parameters do not train; their BatchNorm stays in eval mode"
    )
    activation: Activation = "relu"
    attention: Literal["none", "cbam", "se"] = "none"
    depthwise: bool = Field(False, description="3×3 convs in the blocks → depthwise-separable")
    head: HeadSpec = HeadSpec()

    @model_validator(mode="after")
    def _freeze_unique(self) -> "BackboneSpec":
        if len(set(self.freeze)) != len(self.freeze):
            raise ValueError("freeze lists a stage twice")
        return self

    @property
    def pretrained_source(self) -> str | None:
        """None, 'imagenet' or a file path."""
        return None if self.pretrained == "none" else self.pretrained


class ModelSpec(StrictModel):
    """The network: `layers` (a stack whose shapes propagate from `input`) or `backbone`."""

    input: Annotated[list[PositiveInt], Field(min_length=3, max_length=3)] | None = Field(
        None, description="[C, H, W] of one image; required with `layers`, 224×224 for a backbone"
    )
    num_classes: Annotated[int, Field(ge=2)] = 10
    init: Init = Field("default", description="weight init of every conv/linear without its own")
    layers: Annotated[list[Layer], Field(min_length=1)] | None = None
    backbone: BackboneSpec | None = None

    @model_validator(mode="after")
    def _layers_xor_backbone(self) -> "ModelSpec":
        if (self.layers is None) == (self.backbone is None):
            raise ValueError("give exactly one of `layers` (a custom stack) or `backbone`")
        return self

    @model_validator(mode="after")
    def _stack_needs_input(self) -> "ModelSpec":
        if self.layers is not None and self.input is None:
            raise ValueError("a layer stack needs `input: [C, H, W]`")
        return self

    @model_validator(mode="after")
    def _backbone_channels_agree(self) -> "ModelSpec":
        bb = self.backbone
        if bb is not None and bb.in_channels and self.input and bb.in_channels != self.input[0]:
            raise ValueError(
                f"backbone.in_channels={bb.in_channels} disagrees with input {self.input}"
            )
        return self

    @property
    def input_shape(self) -> Shape:
        if self.input is not None:
            return tuple(self.input)
        assert self.backbone is not None
        return (self.backbone.in_channels or 3, 224, 224)

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]

    def shapes(self) -> list[Shape]:
        """Shape after each top-level layer (first entry: the input). Raises ShapeProblem."""
        assert self.layers is not None
        return stack_shapes(self.layers, self.input_shape, self.num_classes)


def check_shapes(model: ModelSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems (path relative to `model`, message) with shape propagation; [] when it is sound."""
    if model.layers is None:
        return []
    if count_layers(model.layers) > MAX_LAYERS:  # e.g. `repeat: n: 10**12`, which no shape walk finishes
        return [(("layers",), f"the stack expands to more than {MAX_LAYERS:,} layers (repeats multiplied out)")]
    try:
        shapes = model.shapes()
    except ShapeProblem as e:
        return [(("layers", *e.path), e.message)]
    out = shapes[-1]
    if out != (model.num_classes,):
        return [
            (
                ("layers",),
                f"the stack ends with shape {fmt_shape(out)}, but a classifier must end with "
                f"[{model.num_classes}] (num_classes): finish with flatten / global_avg_pool and a "
                "linear without `out`",
            )
        ]
    return []
