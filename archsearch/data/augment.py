"""Batch augmentations as tensor ops; every random parameter is drawn on the CPU from a generator.

Drawing on the CPU and moving the parameters to the batch's device makes results deterministic
for a given seed and identical on CPU and CUDA. No PIL, no Python loop over samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from archsearch.errors import DataError
from archsearch.spec.data import (
    Augment,
    HFlip,
    RandomCrop,
    RandomErasing,
    Rotate90,
    Rotation,
    Translate,
)

BatchOp = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator).to(device)


def _randint(low: int, high: int, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """Ints in [low, high] inclusive, on the CPU."""
    return torch.randint(low, high + 1, (n,), generator=generator)


def hflip(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability p."""
    flip = _rand(x.shape[0], generator, x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def rotation(x: torch.Tensor, degrees: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate each image by a uniform angle in [-degrees, degrees] (bilinear, zero fill)."""
    b, _, h, w = x.shape
    angle = (torch.rand(b, generator=generator, dtype=torch.float64) * 2 - 1) * math.radians(degrees)
    cos, sin = angle.cos(), angle.sin()
    # rotation in pixel space expressed in affine_grid's normalised coordinates (aspect-correct)
    theta = torch.stack(
        [
            torch.stack([cos, -sin * h / w, torch.zeros_like(cos)], 1),
            torch.stack([sin * w / h, cos, torch.zeros_like(cos)], 1),
        ],
        1,
    ).to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotate90(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate each (square) image by k·90°, k uniform in 0..3."""
    if x.shape[-1] != x.shape[-2]:
        raise DataError(
            f"augment rotate90 needs square images, but batches are {x.shape[-2]}x{x.shape[-1]}: "
            "set data.resize or remove rotate90"
        )
    k = _randint(0, 3, x.shape[0], generator).to(x.device)
    out = x
    for turns in (1, 2, 3):  # a loop over the 3 rotations, not over samples
        out = torch.where((k == turns)[:, None, None, None], torch.rot90(x, turns, dims=(-2, -1)), out)
    return out


def shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Move image i by (dy[i], dx[i]) pixels (down / right positive) with zero fill.

    Args:
        x: [B, C, H, W] batch.
        dy: int64 [B] vertical shifts (any device).
        dx: int64 [B] horizontal shifts.
    """
    b, c, h, w = x.shape
    p = int(max(dy.abs().max(), dx.abs().max(), 0)) if b else 0
    if p == 0:
        return x
    padded = F.pad(x, (p, p, p, p))
    dev = x.device
    rows = (p - dy.to(dev))[:, None] + torch.arange(h, device=dev)  # [B, H]
    cols = (p - dx.to(dev))[:, None] + torch.arange(w, device=dev)  # [B, W]
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad by `padding` and crop back to the original size at a random offset per image."""
    b = x.shape[0]
    oy = _randint(0, 2 * padding, b, generator)
    ox = _randint(0, 2 * padding, b, generator)
    return shift(x, padding - oy, padding - ox)


def translate(x: torch.Tensor, pixels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by up to ±pixels in each direction (zero fill)."""
    b = x.shape[0]
    dy = _randint(-pixels, pixels, b, generator)
    dx = _randint(-pixels, pixels, b, generator)
    return shift(x, dy, dx)


def erasing_masks(
    shape: Sequence[int],
    p: float,
    scale: tuple[float, float],
    generator: torch.Generator | None = None,
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """Boolean [B, 1, H, W] CPU masks: one rectangle per image (with probability p), else empty.

    The rectangle covers a uniform share in `scale` of the image with a log-uniform aspect ratio
    in `ratio` (as torchvision's RandomErasing), clipped to the image.
    """
    b, h, w = shape[0], shape[-2], shape[-1]
    apply = torch.rand(b, generator=generator) < p
    area = (scale[0] + torch.rand(b, generator=generator) * (scale[1] - scale[0])) * h * w
    log_r = math.log(ratio[0]) + torch.rand(b, generator=generator) * (math.log(ratio[1]) - math.log(ratio[0]))
    r = log_r.exp()
    eh = (area * r).sqrt().round().long().clamp(1, h)
    ew = (area / r).sqrt().round().long().clamp(1, w)
    top = (torch.rand(b, generator=generator) * (h - eh + 1)).long()
    left = (torch.rand(b, generator=generator) * (w - ew + 1)).long()
    ys = torch.arange(h)[None, :]
    xs = torch.arange(w)[None, :]
    in_rows = (ys >= top[:, None]) & (ys < (top + eh)[:, None])  # [B, H]
    in_cols = (xs >= left[:, None]) & (xs < (left + ew)[:, None])  # [B, W]
    mask = in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]
    return mask[:, None]


def random_erasing(
    x: torch.Tensor, p: float, scale: tuple[float, float], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Set one random rectangle per image (with probability p) to 0 in all channels."""
    mask = erasing_masks(x.shape, p, scale, generator).to(x.device)
    return x.masked_fill(mask, 0.0)


def build_ops(augments: Sequence[Augment]) -> tuple[list[BatchOp], list[BatchOp]]:
    """Turn spec augmentations into (before-normalisation ops, after-normalisation ops).

    Geometric ops run before normalisation, so their zero fill is black; random_erasing runs
    after it, so erased pixels are 0 in normalised space (the mean colour). Order within each
    group follows the spec.
    """
    before: list[BatchOp] = []
    after: list[BatchOp] = []
    for a in augments:
        if isinstance(a, HFlip):
            before.append(lambda x, g, p=a.p: hflip(x, p, g))
        elif isinstance(a, Rotation):
            before.append(lambda x, g, d=a.degrees: rotation(x, d, g))
        elif isinstance(a, Rotate90):
            before.append(lambda x, g: rotate90(x, g))
        elif isinstance(a, RandomCrop):
            before.append(lambda x, g, pad=a.padding: random_crop(x, pad, g))
        elif isinstance(a, Translate):
            before.append(lambda x, g, px=a.pixels: translate(x, px, g))
        elif isinstance(a, RandomErasing):
            lo, hi = a.scale
            if not 0 < lo <= hi <= 1:
                raise DataError(f"augment random_erasing: scale must satisfy 0 < min <= max <= 1, got {a.scale}")
            after.append(lambda x, g, p=a.p, s=(lo, hi): random_erasing(x, p, s, g))
        else:  # pragma: no cover - the spec union is closed
            raise DataError(f"unknown augmentation {a!r}")
    return before, after
