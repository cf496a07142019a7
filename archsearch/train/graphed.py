"""One training step — forward, loss, backward, optimizer — as a single CUDA graph replay.

Small models on a large GPU are bound by per-kernel launch and Python overhead, not by the GPU:
replaying the whole step as one graph removes both (the approach of PyTorch's "whole network
capture" recipe). Used by fit() on CUDA when `train.cuda_graph` is on and the step is graph-safe
(Adam/AdamW, no fp16 loss scaling, no unfreeze schedule); the batch shape must stay fixed, so the
last partial batch of an epoch is skipped.
"""

from __future__ import annotations

import torch
import torch.nn as nn

WARMUP_STEPS = 3


class GraphedStep:
    """Call with (x, y): copies the batch into static tensors and replays the captured step.

    The first WARMUP_STEPS calls run eagerly on a side stream (real batches, real updates), the
    next one captures the graph and replays it. `loss_sum` and `correct` accumulate on the device.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                 precision: str, device: torch.device, grad_clip: float | None = None) -> None:
        self.model, self.opt, self.loss_fn, self.grad_clip = model, optimizer, loss_fn, grad_clip
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.device = device
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.calls = 0
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.stream = torch.cuda.Stream(device)

    def _step(self) -> None:
        assert self.x is not None and self.y is not None
        with torch.autocast("cuda", dtype=self.dtype or torch.float32, enabled=self.dtype is not None,
                            cache_enabled=False):
            out = self.model(self.x)
        loss = self.loss_fn(out.float(), self.y)
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.opt.step()
        self.loss_sum += loss.detach() * self.y.shape[0]
        self.correct += (out.detach().argmax(1) == self.y).sum()

    def reset_totals(self) -> None:
        self.loss_sum.zero_()
        self.correct.zero_()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.x is None:
            self.x = torch.empty_like(x)
            self.y = torch.empty_like(y)
        self.x.copy_(x)
        self.y.copy_(y)
        self.calls += 1
        if self.graph is not None:
            self.graph.replay()
            return
        if self.calls <= WARMUP_STEPS:
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.stream):
                self.opt.zero_grad(set_to_none=True)
                self._step()
            torch.cuda.current_stream(self.device).wait_stream(self.stream)
            return
        self.opt.zero_grad(set_to_none=True)  # grads are then allocated inside the graph's pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        self.graph = graph
        graph.replay()
