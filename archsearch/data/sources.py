"""Pool (tensors or files) + spec → a BatchSource whose batches have the model's input shape."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from archsearch.data.base import BatchSource
from archsearch.data.folder import FilePool, FolderSource
from archsearch.data.memory import TensorPool, TensorSource
from archsearch.data.pipeline import BatchPipeline, check_input_shape, output_shape
from archsearch.errors import DataError
from archsearch.spec.data import DataSpec

Pool = TensorPool | FilePool


def native_shape(pool: Pool, spec: DataSpec, input_shape: Sequence[int]) -> tuple[int, int, int]:
    """[C, H, W] of the uint8 images a source built on `pool` stores or decodes.

    Image files are decoded as L when the model takes 1 channel, else RGB, at data.resize or
    model.input's size; tensors have their own shape.
    """
    if isinstance(pool, TensorPool):
        c, h, w = pool.images.shape[1:]
        return (int(c), int(h), int(w))
    c = 1 if int(input_shape[0]) == 1 else 3
    h, w = (spec.resize, spec.resize) if spec.resize else (int(input_shape[1]), int(input_shape[2]))
    return (c, h, w)


def resize_to(pool: Pool, spec: DataSpec) -> tuple[int, int] | None:
    """(H, W) the pipeline resizes to per batch (files are already decoded at their size)."""
    if isinstance(pool, FilePool) or not spec.resize:
        return None
    return (spec.resize, spec.resize)


def batch_shape(pool: Pool, spec: DataSpec, input_shape: Sequence[int]) -> tuple[int, int, int]:
    """[C, H, W] of the batches, checked against the model's `input_shape`.

    Raises:
        DataError: the shapes differ; says whether to change data.resize, data.to_rgb or model.input.
    """
    if len(input_shape) != 3:
        raise DataError(f"model.input must be [C, H, W] for image data, got {list(input_shape)}")
    native = native_shape(pool, spec, input_shape)
    got = output_shape(native, to_rgb=spec.to_rgb, size=resize_to(pool, spec))
    shown = native if isinstance(pool, TensorPool) else (native[0], int(input_shape[1]), int(input_shape[2]))
    check_input_shape(got, input_shape, shown)
    return got


def make_source(
    pool: Pool,
    spec: DataSpec,
    input_shape: Sequence[int],
    *,
    device: torch.device,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    augments: Sequence = (),
    folder_source: type[FolderSource] = FolderSource,
) -> BatchSource:
    """A TensorSource or FolderSource on `device` for `pool`.

    Args:
        pool: the split's images.
        spec: the data section (to_rgb, resize, workers).
        input_shape: the model's input [C, H, W] (checked).
        device: where batches are made.
        mean: normalisation mean per output channel (None: no normalisation yet).
        std: normalisation std per output channel.
        augments: augmentations available to `batches(augment=True)`.
        folder_source: the FolderSource class to use (the test split counts its reads).
    """
    batch_shape(pool, spec, input_shape)
    native = native_shape(pool, spec, input_shape)
    pipeline = BatchPipeline(
        native, to_rgb=spec.to_rgb, size=resize_to(pool, spec), augments=augments, mean=mean, std=std
    )
    if isinstance(pool, TensorPool):
        return TensorSource(pool.images, pool.labels, pipeline, device)
    return folder_source(pool, pipeline, device, workers=spec.workers)
