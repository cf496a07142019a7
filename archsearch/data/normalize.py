"""Normalisation constants: auto (train statistics), imagenet, none or given per-channel values."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from archsearch.errors import DataError
from archsearch.spec.data import MeanStd

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FOLDER_STATS_LIMIT = 2000  # image folders: auto statistics from at most this many train images


def channel_stats(batches: Iterable[torch.Tensor]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 [B, C, H, W] batches, scaled to [0, 1].

    Exact: built from per-channel histograms of the 256 byte values (fast, no float copy of the
    data). A constant channel gets std 1.
    """
    hist: torch.Tensor | None = None
    for x in batches:
        # bincount straight on uint8, one channel at a time: no widened copy of the data
        h = torch.stack([torch.bincount(x[:, c].flatten(), minlength=256) for c in range(x.shape[1])])
        h = h.to("cpu", torch.float64)
        hist = h if hist is None else hist + h
    if hist is None or hist.sum() == 0:
        raise DataError("cannot compute normalisation statistics: the train split is empty")
    values = torch.arange(256, dtype=torch.float64) / 255.0
    n = hist.sum(1)
    mean = (hist * values).sum(1) / n
    var = (hist * values**2).sum(1) / n - mean**2
    std = var.clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(s if s > 1e-6 else 1.0 for s in std.tolist())


def resolve(
    normalize: str | MeanStd,
    channels: int,
    train_stats: Callable[[], tuple[tuple[float, ...], tuple[float, ...]]],
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per output channel for the spec's `normalize`.

    Args:
        normalize: "auto" | "imagenet" | "none" | MeanStd.
        channels: channels of the batches (after to_rgb).
        train_stats: computes (mean, std) on the train split in output channels; called for auto only.

    Raises:
        DataError: imagenet on non-RGB batches, or given values of the wrong length.
    """
    if isinstance(normalize, MeanStd):
        if len(normalize.mean) != channels:
            raise DataError(
                f"data.normalize gives {len(normalize.mean)} mean/std values but batches have {channels} "
                f"channel(s): give exactly {channels} of each"
            )
        return tuple(normalize.mean), tuple(normalize.std)
    if normalize == "auto":
        return train_stats()
    if normalize == "imagenet":
        if channels != 3:
            raise DataError(
                f"data.normalize: imagenet needs 3-channel batches but they have {channels}: "
                "set data.to_rgb: true, or use normalize: auto"
            )
        return IMAGENET_MEAN, IMAGENET_STD
    if normalize == "none":
        return (0.0,) * channels, (1.0,) * channels
    raise DataError(f"data.normalize: expected one of auto, imagenet, none or {{mean, std}}, got {normalize!r}")


def expand_channels(
    stats: tuple[tuple[float, ...], tuple[float, ...]], channels: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Repeat single-channel statistics for to_rgb batches (the 3 channels are identical)."""
    mean, std = stats
    if len(mean) == 1 and channels == 3:
        return mean * 3, std * 3
    return mean, std
