"""The per-batch path every source shares: uint8 → float → resize → to_rgb → augment → normalise."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from archsearch.data.augment import build_ops
from archsearch.errors import DataError
from archsearch.spec.data import Augment


def output_shape(
    native: tuple[int, int, int], *, to_rgb: bool, size: tuple[int, int] | None
) -> tuple[int, int, int]:
    """[C, H, W] of batches built from `native` [C, H, W] images."""
    c, h, w = native
    if to_rgb and c == 1:
        c = 3
    if size is not None:
        h, w = size
    return (c, h, w)


class BatchPipeline:
    """Converts raw uint8 batches on the device into normalised float batches, per batch.

    Resizing happens per batch (never on the whole dataset), bilinear with antialiasing when
    downscaling.

    Args:
        native_shape: [C, H, W] of the uint8 images the source stores.
        to_rgb: repeat a single channel 3 times.
        size: (H, W) to resize to, or None to keep the native size.
        augments: the spec's augmentations (applied only when asked).
        mean: per-channel mean of the output channels.
        std: per-channel std of the output channels.
    """

    def __init__(
        self,
        native_shape: tuple[int, int, int],
        *,
        to_rgb: bool = False,
        size: tuple[int, int] | None = None,
        augments: Sequence[Augment] = (),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        self.native_shape = tuple(int(s) for s in native_shape)
        self.to_rgb = to_rgb
        self.size = None if size is None or tuple(size) == self.native_shape[1:] else tuple(size)
        self.output_shape = output_shape(self.native_shape, to_rgb=to_rgb, size=self.size)
        channels = self.output_shape[0]
        self.mean = tuple(float(m) for m in (mean if mean is not None else [0.0] * channels))
        self.std = tuple(float(s) for s in (std if std is not None else [1.0] * channels))
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != channels:
                raise DataError(
                    f"data.normalize: {name} has {len(values)} values but batches have {channels} "
                    f"channel(s): give one value per channel"
                )
        if any(s <= 0 for s in self.std):
            raise DataError(f"data.normalize: std must be positive, got {list(self.std)}")
        if any(a.type == "rotate90" for a in augments) and self.output_shape[1] != self.output_shape[2]:
            raise DataError(
                f"augment rotate90 needs square images, but batches are {self.output_shape[1]}x"
                f"{self.output_shape[2]}: set data.resize or remove rotate90"
            )
        self.before, self.after = build_ops(augments)
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._stats:
            m = torch.tensor(self.mean, dtype=torch.float32, device=device)[None, :, None, None]
            s = torch.tensor(self.std, dtype=torch.float32, device=device)[None, :, None, None]
            self._stats[device] = (m, s)
        return self._stats[device]

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, H, W] → float32 in [0, 1], resized and to_rgb applied (no augment/normalise)."""
        x = x.float().div_(255.0)
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            down = self.size[0] < x.shape[-2] or self.size[1] < x.shape[-1]
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=down)
        if self.to_rgb and x.shape[1] == 1:  # after resizing: one channel to resize, not three
            x = x.expand(-1, 3, -1, -1).contiguous()
        return x

    def __call__(
        self, x: torch.Tensor, *, augment: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Normalised float32 batch on x's device.

        Args:
            x: uint8 [B, C, H, W] batch.
            augment: apply the augmentations.
            generator: CPU generator for the augmentation parameters.
        """
        x = self.to_float(x)
        if augment:
            for op in self.before:
                x = op(x, generator)
        m, s = self._mean_std(x.device)
        x = (x - m) / s
        if augment:
            for op in self.after:
                x = op(x, generator)
        return x


def check_input_shape(got: tuple[int, int, int], wanted: Sequence[int], native: tuple[int, int, int]) -> None:
    """DataError unless batches of shape `got` fit the model's input `wanted`, saying what to change.

    Args:
        got: [C, H, W] the batches will have.
        wanted: the model's input shape (model.input).
        native: [C, H, W] of the stored images, before to_rgb / resize.
    """
    wanted = tuple(int(s) for s in wanted)
    if tuple(got) == wanted:
        return
    fixes = []
    if len(wanted) != 3:
        raise DataError(f"model.input must be [C, H, W] for image data, got {list(wanted)}")
    if got[0] != wanted[0]:
        if wanted[0] == 3 and native[0] == 1:
            fixes.append("set data.to_rgb: true")
        elif wanted[0] == 1 and got[0] == 3 and native[0] == 1:
            fixes.append("remove data.to_rgb")
        fixes.append(f"set model.input channels to {got[0]}")
    if got[1:] != wanted[1:]:
        if wanted[1] == wanted[2]:
            fixes.append(
                "remove data.resize" if wanted[1:] == native[1:] else f"set data.resize: {wanted[1]}"
            )
        fixes.append(f"set model.input to {list(got)}")
    raise DataError(
        f"the data gives batches of shape {list(got)} (stored images {list(native)}) but model.input "
        f"is {list(wanted)}: " + ", or ".join(dict.fromkeys(fixes))
    )
