"""Reusable blocks: residual wrapper, CBAM, Squeeze-and-Excitation, depthwise-separable conv.

Blocks receive layer classes/constructors (act_layer), never strings, so the same block serves the
custom stacks and the torchvision ResNet variants.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn


class Residual(nn.Module):
    """y = body(x) + shortcut(x)."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


def projection(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """1×1 conv + batchnorm shortcut that matches channels and spatial size (ResNet option B)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_ch),
    )


def _hidden(channels: int, reduction: int) -> int:
    return max(1, channels // reduction)


class SqueezeExcite(nn.Module):
    """Channel attention: global average pool → MLP (C → C/r → C) → sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16, act_layer: Callable[[], nn.Module] = nn.ReLU) -> None:
        super().__init__()
        hidden = _hidden(channels, reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(s))))


class CBAM(nn.Module):
    """CBAM (Woo et al., 2018): channel attention from a shared MLP over average- and max-pooled
    features, then spatial attention from a k×k conv over the channel-wise [mean; max] maps."""

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        spatial_kernel: int = 7,
        act_layer: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        hidden = _hidden(channels, reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), act_layer(), nn.Conv2d(hidden, channels, 1, bias=False)
        )
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean((2, 3), keepdim=True))
        mx = self.mlp(x.amax((2, 3), keepdim=True))
        x = x * torch.sigmoid(avg + mx)
        maps = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(maps))


class DepthwiseSeparableConv(nn.Sequential):
    """k×k depthwise conv (groups = in channels, carries stride/padding) then 1×1 pointwise conv."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 1,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_ch, in_ch, kernel, stride=stride, padding=padding, dilation=dilation, groups=in_ch, bias=False
        )
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=bias)


class FastDropout(nn.Module):
    """Dropout whose mask costs a quarter of the random draws of nn.Dropout.

    torch's CPU dropout draws one random number per element (`bernoulli_`), which took a fifth of a
    CustomNet training step on a 2-core CPU. Here one 64-bit random integer gives four 16-bit
    lanes, each compared with a threshold: the same Bernoulli mask, with p rounded to a multiple of
    1/65536. The mask keeps the input's memory format (channels_last stays channels_last). On CUDA
    it is torch's fused dropout kernel."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), but got {p=}.")
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.is_cuda:  # CUDA's dropout is one fused kernel already
            return nn.functional.dropout(x, self.p, True)
        channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        shape = [x.shape[0], x.shape[2], x.shape[3], x.shape[1]] if channels_last else list(x.shape)
        n = x.numel()
        lanes = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
        keep = lanes.view(torch.int16)[:n].view(shape) >= int(round(self.p * 65536)) - 32768
        if channels_last:
            keep = keep.permute(0, 3, 1, 2)
        return x * keep * (1.0 / (1.0 - self.p))
