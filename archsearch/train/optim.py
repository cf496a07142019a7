"""Optimizer (with per-stage learning rates for backbones) and the learning-rate schedule."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torchvision.models.resnet import ResNet

from archsearch.build.backbones import stage_modules
from archsearch.spec.train import TrainSpec


def param_groups(model: nn.Module, spec: TrainSpec) -> list[dict]:
    """One group per backbone stage when lr multipliers are given, else one group.

    Frozen parameters are included too: they receive no gradient (so no update) until an
    unfreeze schedule turns requires_grad back on, and then the optimizer already knows them."""
    if not isinstance(model, ResNet) or not spec.lr_multipliers:
        return [{"params": list(model.parameters()), "lr": spec.lr, "stage": "all"}]
    groups, seen = [], set()
    for stage, modules in stage_modules(model).items():
        params = [p for m in modules for p in m.parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        groups.append({"params": params, "lr": spec.lr * spec.lr_multipliers.get(stage, 1.0), "stage": stage})
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:
        groups.append({"params": rest, "lr": spec.lr, "stage": "other"})
    return groups


def make_optimizer(model: nn.Module, spec: TrainSpec, capturable: bool = False) -> torch.optim.Optimizer:
    """The spec's optimizer; Adam/AdamW/SGD use torch's fused kernels (one kernel for all weights).

    `capturable` (Adam/AdamW, for CUDA graphs): learning rates become device tensors that the
    schedule updates in place, and the step runs without host synchronisation."""
    groups = param_groups(model, spec)
    o = spec.optimizer
    if o.name in ("adam", "adamw"):
        cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
        if capturable:
            device = next(model.parameters()).device
            for g in groups:
                g["lr"] = torch.tensor(float(g["lr"]), device=device)
            return cls(groups, lr=torch.tensor(spec.lr, device=device), weight_decay=spec.weight_decay,
                       fused=True, capturable=True)
        return cls(groups, lr=spec.lr, weight_decay=spec.weight_decay, fused=True)
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=spec.lr, momentum=o.momentum, nesterov=o.nesterov and o.momentum > 0,
                               weight_decay=spec.weight_decay, fused=True)
    return torch.optim.RMSprop(groups, lr=spec.lr, momentum=o.momentum, weight_decay=spec.weight_decay, foreach=True)


class Schedule:
    """Sets every group's lr before each step: linear warmup, then none / step / cosine / onecycle;
    `plateau` multiplies by `factor` after `patience` epochs without improvement of the val metric."""

    def __init__(self, optimizer: torch.optim.Optimizer, spec: TrainSpec, steps_per_epoch: int) -> None:
        self.opt, self.spec, self.spe = optimizer, spec, max(1, steps_per_epoch)
        self.base = [float(g["lr"]) for g in optimizer.param_groups]
        self.total = spec.epochs * self.spe
        self.warmup = int(round(spec.warmup_epochs * self.spe))
        self.plateau_scale, self.best, self.bad_epochs = 1.0, -math.inf, 0

    def factor(self, step: int) -> float:
        s = self.spec.scheduler
        if s.name == "onecycle":  # rise over warmup (30 % by default), cosine down to ~0
            rise = self.warmup or max(1, int(0.3 * self.total))
            if step < rise:
                return 0.04 + 0.96 * step / rise
            t = (step - rise) / max(1, self.total - rise)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t))) + 1e-4
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup and step < self.warmup else 1.0
        if s.name == "cosine":
            t = (step - self.warmup) / max(1, self.total - self.warmup)
            return warm * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, t))))
        if s.name == "step":
            return warm * s.gamma ** ((step // self.spe) // s.step_size)
        if s.name == "plateau":
            return warm * self.plateau_scale
        return warm

    def step(self, step: int) -> None:
        f = self.factor(step)
        for g, base in zip(self.opt.param_groups, self.base):
            if isinstance(g["lr"], torch.Tensor):
                g["lr"].fill_(base * f)  # a captured graph reads this tensor
            else:
                g["lr"] = base * f

    def epoch_end(self, val_metric: float) -> None:
        s = self.spec.scheduler
        if s.name != "plateau":
            return
        if val_metric > self.best + 1e-6:
            self.best, self.bad_epochs = val_metric, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > s.patience:
                self.plateau_scale *= s.factor
                self.bad_epochs = 0

    @property
    def lr(self) -> float:
        return float(self.opt.param_groups[-1]["lr"])

    def state_dict(self) -> dict:
        return {"plateau_scale": self.plateau_scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale, self.best, self.bad_epochs = state["plateau_scale"], state["best"], state["bad_epochs"]
