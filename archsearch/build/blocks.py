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


def _commutes_with_max(m: nn.Module) -> bool:
    """Whether act(max(window)) == max(act(window)) with the same gradient: ReLU, LeakyReLU (slope >= 0)."""
    return isinstance(m, nn.ReLU) or (isinstance(m, nn.LeakyReLU) and m.negative_slope >= 0)


def _last(m: nn.Module) -> nn.Module:
    """The module a stack ends with, through nested stacks (a `repeat` is a Sequential of stacks)."""
    while type(m) in (nn.Sequential, Stack) and len(m):
        m = m[-1]
    return m


def _without_last(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """m(x) without the module _last(m) would return (which is then applied by the caller)."""
    if type(m) not in (nn.Sequential, Stack) or not len(m):
        return x
    if isinstance(m, Stack) and m.training:
        x = m.run(x, len(m) - 1)
    else:
        for mod in list(m)[:-1]:
            x = mod(x)
    return _without_last(m[-1], x)


class Stack(nn.Sequential):
    """nn.Sequential that, while training, runs "activation → max-pool" as "max-pool → activation".

    A non-decreasing activation commutes with a max: both orders give the same output, and the
    same gradient — max-pool's backward routes it to the window's largest input either way, and
    where ReLU makes a window's inputs equal (all <= 0) the gradient is zero in both orders. (A
    LeakyReLU can round two adjacent negative inputs to the same value; the gradient then goes to
    the larger one rather than the first: a tie-break, not a different function.) The activation
    then runs on a quarter of the elements (2×2 pooling): on S1 CustomNet's 28×28×32 block its
    backward is ~6 % of a bf16 CPU step. The activation may end a nested stack (the last copy of
    a `repeat`, as in S3's VGG blocks). Modules, their order and the state dict are unchanged; in
    eval mode (export, evaluation, explain hooks) it is plain nn.Sequential."""

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__(*modules)
        self.swapped = tuple(i for i in range(len(modules) - 1)
                             if _commutes_with_max(_last(modules[i])) and isinstance(modules[i + 1], nn.MaxPool2d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.swapped:
            return super().forward(x)
        return self.run(x, len(self))

    def run(self, x: torch.Tensor, stop: int) -> torch.Tensor:
        """The first `stop` modules, each swapped pair as pool then activation."""
        mods = list(self)
        i = 0
        while i < stop:
            if i in self.swapped and i + 1 < stop:
                x = _last(mods[i])(mods[i + 1](_without_last(mods[i], x)))
                i += 2
            else:
                x = mods[i](x)
                i += 1
        return x


class _ChannelsLastFlatten(torch.autograd.Function):
    """x.flatten(1) of a channels-last 4-D tensor whose gradient goes back channels-last too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.shape = x.shape
        return x.flatten(1)  # a copy into [C, H, W] order: what the next linear layer's weights expect

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.view(ctx.shape).contiguous(memory_format=torch.channels_last)


class Flatten(nn.Flatten):
    """nn.Flatten whose gradient keeps a channels-last input's memory format.

    Flattening a channels-last activation copies it into [C, H, W] order, and autograd sends the
    gradient back in that (NCHW) layout. The layers before (activation, dropout) then combine an
    NCHW gradient with their saved channels-last tensors, which on the CPU runs ~30× slower than
    with matching layouts (ReLU's backward on S1 CustomNet's 128×128×7×7 block took 1.8 ms of a
    ~25 ms bf16 step: `python bench/profile_step.py --shapes`). Here the gradient is converted back
    to channels-last once. Same values, same module in eval mode and under tracing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dim() == 4 and self.start_dim == 1 and self.end_dim == -1 and x.requires_grad
                and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)):
            return _ChannelsLastFlatten.apply(x)
        return super().forward(x)


class FastDropout(nn.Module):
    """Dropout whose mask costs a quarter of the random draws of nn.Dropout.

    torch's CPU dropout draws one random number per element (`bernoulli_`), which took a fifth of a
    CustomNet training step on a 2-core CPU. Here one 64-bit random integer gives four 16-bit
    lanes, each compared with a threshold: the same Bernoulli mask, with p rounded to a multiple of
    1/65536 — or eight 8-bit lanes where p is a multiple of 1/256 (0.5, 0.25, ...), exactly.
    Where 1 / (1 - p) is exact in the input's dtype (p = 0.5 in bf16), the scaled mask is made once
    and is all the backward reads. The mask keeps the input's memory format (channels_last stays
    channels_last). On CUDA it is torch's fused dropout kernel."""

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
        lane, levels = (torch.int8, 256) if (self.p * 256).is_integer() else (torch.int16, 65536)
        per_draw = 8 // lane.itemsize
        lanes = torch.randint(-(2**63), 2**63 - 1, ((n + per_draw - 1) // per_draw,), dtype=torch.int64, device=x.device)
        keep = lanes.view(lane)[:n].view(shape) >= int(round(self.p * levels)) - levels // 2
        if channels_last:
            keep = keep.permute(0, 3, 1, 2)
        scale = 1.0 / (1.0 - self.p)
        if torch.tensor(scale, dtype=x.dtype).item() == scale:
            return x * keep.to(x.dtype).mul_(scale)  # autograd keeps only this mask for the backward
        return x * keep * scale
