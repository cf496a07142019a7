"""In-memory datasets: uint8 tensors kept on the device, batches drawn by index (no DataLoader)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from archsearch.data.base import BatchSource
from archsearch.data.pipeline import BatchPipeline


@dataclass
class TensorPool:
    """Decoded images of one split (or the non-test part of a pool), on the CPU.

    Attributes:
        images: uint8 [N, C, H, W].
        labels: int64 [N].
        classes: class names, index = label.
        source: where the data came from (shown in info and errors).
        cached: whether it was loaded from the tensor cache.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str
    cached: bool = False

    def subset(self, indices: torch.Tensor | list[int]) -> "TensorPool":
        """The pool restricted to `indices` (in that order)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return TensorPool(self.images[idx], self.labels[idx], self.classes, self.source, self.cached)


class TensorSource(BatchSource):
    """A split held as uint8 tensors on `device` (GPU-resident on CUDA).

    Args:
        images: uint8 [N, C, H, W].
        labels: int64 [N].
        pipeline: the per-batch conversion (its native shape must match the images).
        device: where images live and batches are made.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        pipeline: BatchPipeline,
        device: str | torch.device = "cpu",
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], but got {images.dtype} {list(images.shape)}.")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels.")
        self.device = torch.device(device)
        self.pipeline = pipeline
        self.labels = labels.to(device="cpu", dtype=torch.int64).contiguous()
        self.num_samples = len(self.labels)
        self._images = images.contiguous().to(self.device)
        self._labels = self.labels.to(self.device)
        self._fingerprint: str | None = None

    def raw_batches(
        self, batch_size: int, order: torch.Tensor | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if order is not None:
            order = order.to(self.device)
        for start in range(0, self.num_samples, batch_size):
            if order is None:
                yield self._images[start : start + batch_size], self._labels[start : start + batch_size]
            else:
                idx = order[start : start + batch_size]
                yield self._images[idx], self._labels[idx]

    def fingerprint(self) -> str:
        """sha256 over the uint8 images and int64 labels, in stored order."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(str(list(self._images.shape)).encode())
            h.update(self._images.cpu().numpy().tobytes())
            h.update(self.labels.numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint
