"""The `train:` section: optimiser, schedule, precision, stopping, transfer-learning controls."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from archsearch.spec.base import NamedOption, PositiveInt, Probability, StrictModel
from archsearch.spec.model import Stage


class OptimizerSpec(NamedOption):
    name: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = False


class SchedulerSpec(NamedOption):
    """none | step{step_size, gamma} | cosine | onecycle | plateau{factor, patience}."""

    name: Literal["none", "step", "cosine", "onecycle", "plateau"] = "none"
    step_size: PositiveInt = 1
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.7
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.5
    patience: Annotated[int, Field(ge=0)] = 2


class EarlyStopping(StrictModel):
    patience: PositiveInt = 5
    metric: Literal["val_metric", "val_loss"] = "val_metric"


class Unfreeze(StrictModel):
    """Train with `model.backbone.freeze` for `after_epochs`, then unfreeze `stages` (default all)."""

    after_epochs: PositiveInt
    stages: list[Stage] | None = None


class TrainSpec(StrictModel):
    optimizer: OptimizerSpec = OptimizerSpec()
    lr: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    batch_size: PositiveInt = 128
    epochs: PositiveInt = 10
    scheduler: SchedulerSpec = SchedulerSpec()
    warmup_epochs: Annotated[float, Field(ge=0)] = 0.0
    label_smoothing: Probability = 0.0
    grad_clip: Annotated[float, Field(gt=0)] | None = None
    early_stopping: EarlyStopping | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = Field(True, description="NHWC memory format (faster convs on CPU and GPU)")
    compile: bool = False
    cuda_graph: bool = Field(
        True, description="CUDA: replay each training step as one CUDA graph (Adam/AdamW, bf16/fp32); "
        "skips the last partial batch of an epoch"
    )
    seed: int = 0
    deterministic: bool = False
    metric: Literal["accuracy", "balanced_accuracy", "macro_f1"] = Field(
        "accuracy", description="validation metric used to select checkpoints and trials"
    )
    lr_multipliers: dict[Literal["stem", "layer1", "layer2", "layer3", "layer4", "head"], float] = (
        Field({}, description="backbones: per-stage learning-rate multiplier")
    )
    unfreeze: Unfreeze | None = None

    @model_validator(mode="after")
    def _warmup_within_epochs(self) -> "TrainSpec":
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be below epochs ({self.epochs})")
        return self

    @model_validator(mode="after")
    def _unfreeze_within_epochs(self) -> "TrainSpec":
        if self.unfreeze is not None and self.unfreeze.after_epochs >= self.epochs:
            raise ValueError(f"unfreeze.after_epochs ({self.unfreeze.after_epochs}) must be below epochs "
                             f"({self.epochs}): the frozen stages would never be trained")
        return self
