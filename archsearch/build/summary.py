"""Per-layer output shapes and parameter counts, FLOPs and a memory estimate of a built model."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    trainable: int


@dataclass(frozen=True)
class Summary:
    """What `archsearch summary` prints. FLOPs count a multiply-add as 2 (torch's flop counter)."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    rows: list[LayerRow]
    params: int
    trainable_params: int
    buffers: int
    flops: int
    activation_numel: int = field(repr=False)
    max_activation_numel: int = field(repr=False, default=0)

    def memory_bytes(self, batch_size: int, optimizer_slots: int = 2, bytes_per_value: int = 4) -> dict[str, int]:
        """A training-memory estimate at `batch_size`: weights, their gradients, the optimizer's
        state (Adam keeps 2 values a weight, SGD with momentum 1), the activations that autograd
        keeps for backward (every leaf module's output, counted once) and the transient gradient
        buffers of backward (twice the largest single activation)."""
        weights = (self.params + self.buffers) * bytes_per_value
        grads = self.trainable_params * bytes_per_value
        optim = self.trainable_params * bytes_per_value * optimizer_slots
        acts = self.activation_numel * batch_size * bytes_per_value
        transient = 2 * self.max_activation_numel * batch_size * bytes_per_value
        return {"weights": weights, "gradients": grads, "optimizer": optim, "activations": acts,
                "transient": transient, "total": weights + grads + optim + acts + transient}


def count_params(module: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return total, trainable


def _rows_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    children = list(model.named_children())
    return children if children else [("", model)]


def summarize(model: nn.Module, input_shape: tuple[int, ...] | list[int]) -> Summary:
    """Run one image through `model` (eval mode, CPU or its device) and collect the summary."""
    input_shape = tuple(input_shape)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, child in _rows_of(model):
        hooks.append(
            child.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
        )
    leaf_numel = [0, 0]  # sum, max

    def count_leaf(m: nn.Module, i: tuple, o: torch.Tensor) -> None:
        if isinstance(o, torch.Tensor):
            leaf_numel[0] += o[0].numel()
            leaf_numel[1] = max(leaf_numel[1], o[0].numel())

    for m in model.modules():
        if not list(m.children()) and not isinstance(m, (nn.Identity, nn.Flatten, nn.Dropout, nn.Dropout2d)):
            hooks.append(m.register_forward_hook(count_leaf))
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros((1, *input_shape), device=device)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    rows = []
    for name, child in _rows_of(model):
        total, trainable = count_params(child)
        rows.append(LayerRow(name, type(child).__name__, shapes.get(name, ()), total, trainable))
    total, trainable = count_params(model)
    buffers = sum(b.numel() for b in model.buffers() if b.dtype.is_floating_point)
    return Summary(
        input_shape=input_shape,
        output_shape=tuple(out.shape[1:]),
        rows=rows,
        params=total,
        trainable_params=trainable,
        buffers=buffers,
        flops=int(counter.get_total_flops()),
        activation_numel=leaf_numel[0],
        max_activation_numel=leaf_numel[1],
    )


@torch.no_grad()
def latency(model: nn.Module, input_shape: tuple[int, ...], device: torch.device, batch_sizes=(1, 256),
            repeats: int = 10) -> dict:
    """Median ms per image at each batch size (eval mode, fp32) and images/s at the largest."""
    model.eval()
    out: dict = {}
    for bs in batch_sizes:
        x = torch.randn(bs, *input_shape, device=device)
        for _ in range(2):
            model(x)
        times = []
        for _ in range(repeats if bs == 1 else max(3, repeats // 3)):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        med = sorted(times)[len(times) // 2]
        out[f"ms_per_image_batch{bs}"] = 1000 * med / bs
        out[f"img_per_s_batch{bs}"] = bs / med
    return out
