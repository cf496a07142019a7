"""The two data interfaces the trainer sees: BatchSource (one split) and TrainVal (train + val)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from archsearch.data.pipeline import BatchPipeline


class BatchSource(ABC):
    """One split, served as normalised float batches on the source's device.

    Subclasses supply raw uint8 batches (`raw_batches`) and a fingerprint; conversion,
    augmentation and normalisation are the shared `pipeline`, so every source behaves alike.

    Attributes:
        num_samples: how many samples the split holds.
        labels: int64 CPU tensor of all labels, in iteration order when shuffle=False.
        pipeline: the per-batch uint8 → float conversion shared by all sources.
        device: where batches are produced.
    """

    num_samples: int
    labels: torch.Tensor
    pipeline: BatchPipeline
    device: torch.device

    def num_batches(self, batch_size: int) -> int:
        """Batches in one pass, the last partial batch included."""
        _check_batch_size(batch_size)
        return math.ceil(self.num_samples / batch_size)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: bool = False,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass over the split.

        Args:
            batch_size: samples per batch; the last batch may be smaller.
            shuffle: visit samples in a random order drawn with `torch.randperm` on the CPU.
            augment: apply the spec's augmentations (training only).
            generator: CPU generator for the order and every augmentation parameter; the same
                seed gives the same batches on any device.

        Yields:
            (x, y): x float32 [B, C, H, W] normalised, y int64 [B], both on `self.device`.
        """
        _check_batch_size(batch_size)
        order = torch.randperm(self.num_samples, generator=generator) if shuffle else None
        for xb, yb in self.raw_batches(batch_size, order):
            yield self.pipeline(xb, augment=augment, generator=generator), yb

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """[C, H, W] of the batches this source yields."""
        return self.pipeline.output_shape

    @abstractmethod
    def raw_batches(
        self, batch_size: int, order: torch.Tensor | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (uint8 [B, C, H, W], int64 [B]) on the device, in `order` (CPU int64) or as stored."""

    @abstractmethod
    def fingerprint(self) -> str:
        """sha256 hex identifying exactly which samples (and labels) the split holds."""


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, but got {batch_size=}.")


@dataclass
class TrainVal:
    """What training gets: the train and val splits and how their batches look.

    Attributes:
        train: the train split (shuffled and augmented by the trainer).
        val: the validation split.
        classes: class names, index = label.
        input_shape: [C, H, W] of the batches (after to_rgb / resize).
        mean: per-channel normalisation mean applied to batches.
        std: per-channel normalisation std.
        info: JSON-serialisable facts: dataset, source, split sizes, class counts, imbalance.
    """

    train: BatchSource
    val: BatchSource
    classes: list[str]
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    info: dict = field(default_factory=dict)
