"""The `data:` section: which dataset, how it is split, normalised and augmented."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from archsearch.spec.base import PositiveInt, Probability, StrictModel

DATASETS = ("fashion_mnist", "mnist", "cifar10", "digits", "image_folder")


class _Aug(StrictModel):
    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


class HFlip(_Aug):
    type: Literal["hflip"]
    p: Probability = 0.5


class Rotation(_Aug):
    type: Literal["rotation"]
    degrees: Annotated[float, Field(gt=0, le=180)] = 15.0


class Rotate90(_Aug):
    """Rotation by a random multiple of 90° (S4's augmentation)."""

    type: Literal["rotate90"]


class RandomCrop(_Aug):
    """Pad by `padding` pixels (zeros) and crop back to the original size at a random offset."""

    type: Literal["random_crop"]
    padding: PositiveInt = 4


class Translate(_Aug):
    type: Literal["translate"]
    pixels: PositiveInt = 2


class RandomErasing(_Aug):
    type: Literal["random_erasing"]
    p: Probability = 0.5
    scale: tuple[float, float] = (0.02, 0.2)


Augment = Annotated[
    Union[HFlip, Rotation, Rotate90, RandomCrop, Translate, RandomErasing],
    Field(discriminator="type"),
]
AUGMENTS = ("hflip", "rotation", "rotate90", "random_crop", "translate", "random_erasing")


def _augment_names(value: Any) -> Any:
    if isinstance(value, list):
        return [{"type": v} if isinstance(v, str) else v for v in value]
    return value


class MeanStd(StrictModel):
    mean: Annotated[list[float], Field(min_length=1)]
    std: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)]

    @model_validator(mode="after")
    def _same_length(self) -> "MeanStd":
        if len(self.mean) != len(self.std):
            raise ValueError("mean and std need one value per channel each")
        return self


class DataSpec(StrictModel):
    """Dataset, splits and augmentation. The test split is never part of what training sees."""

    dataset: Literal["fashion_mnist", "mnist", "cifar10", "digits", "image_folder"] = (
        "fashion_mnist"
    )
    path: str | None = Field(None, description="image_folder: the folder (one sub-folder a class)")
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.1, description="image_folder without train/ and test/ sub-folders: held-out share"
    )
    train_size: PositiveInt | None = Field(None, description="stratified subset of the train split")
    val_size: PositiveInt | None = Field(None, description="stratified subset of the val split")
    test_size: PositiveInt | None = Field(
        None, description="stratified subset of the test split (evaluation only)"
    )
    split_seed: int = Field(0, description="seed of the train/val split (fixed across trials)")
    resize: PositiveInt | None = None
    to_rgb: bool = False
    normalize: Union[Literal["auto", "imagenet", "none"], MeanStd] = "auto"
    augment: list[Augment] = []
    workers: Annotated[int, Field(ge=0)] = 2

    @model_validator(mode="before")
    @classmethod
    def _augment_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict) and "augment" in value:
            value = {**value, "augment": _augment_names(value["augment"])}
        return value

    @model_validator(mode="after")
    def _folder_needs_path(self) -> "DataSpec":
        if self.dataset == "image_folder" and not self.path:
            raise ValueError("dataset image_folder needs `path`")
        if self.dataset != "image_folder" and self.path:
            raise ValueError(f"`path` is for image_folder only, not {self.dataset}")
        return self
