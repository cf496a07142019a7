"""Budgets checked before a trial trains: parameters, FLOPs, and memory (measured on CUDA,
estimated on CPU)."""

from __future__ import annotations

import gc
from dataclasses import dataclass

import torch
import torch.nn as nn

from archsearch.build import Summary, build_model, summarize
from archsearch.errors import SpecError
from archsearch.spec.root import Spec
from archsearch.spec.space import Space, extremes
from archsearch.train.precision import autocast, resolve_precision


@dataclass
class BudgetCheck:
    memory_bytes: int
    memory_source: str  # measured | estimated
    violations: list[str]
    excess: float  # max relative excess over any budget (0 when within budget)


def measure_cuda_peak(model: nn.Module, spec: Spec, device: torch.device) -> int:
    """Peak CUDA memory of one forward + backward + optimizer-sized state at the trial's batch size."""
    precision = resolve_precision(spec.train.precision, device)
    torch.cuda.synchronize(device)
    gc.collect()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    model = model.to(device)
    try:
        x = torch.randn(spec.train.batch_size, *spec.model.input_shape, device=device)
        y = torch.zeros(spec.train.batch_size, dtype=torch.long, device=device)
        model.train()
        with autocast(precision, device):
            out = model(x)
        nn.functional.cross_entropy(out.float(), y).backward()
        # optimizer state (Adam: 2 values a weight) is allocated at the first step: add it
        slots = 2 if spec.train.optimizer.name in ("adam", "adamw") else 1
        state = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad) * slots
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base + state
    finally:
        model.zero_grad(set_to_none=True)
        model.to("cpu")
        del model
        gc.collect()
        torch.cuda.empty_cache()


def check_budgets(spec: Spec, summary: Summary, model: nn.Module, device: torch.device) -> BudgetCheck:
    b = spec.search.budgets
    violations: list[str] = []
    excess = 0.0
    slots = 2 if spec.train.optimizer.name in ("adam", "adamw") else 1
    memory, source = summary.memory_bytes(spec.train.batch_size, optimizer_slots=slots)["total"], "estimated"
    if b.max_params is not None and summary.params > b.max_params:
        violations.append(f"{summary.params:,} parameters > max_params {b.max_params:,}")
        excess = max(excess, summary.params / b.max_params - 1)
    if b.max_flops is not None and summary.flops > b.max_flops:
        violations.append(f"{summary.flops:,} FLOPs > max_flops {b.max_flops:,}")
        excess = max(excess, summary.flops / b.max_flops - 1)
    if b.gpu_memory is not None and not violations:
        if device.type == "cuda":
            try:
                memory, source = measure_cuda_peak(model, spec, device), "measured"
            except torch.OutOfMemoryError:
                memory, source = torch.cuda.get_device_properties(device).total_memory, "cuda_oom"
        if memory > b.gpu_memory:
            violations.append(f"{source} memory {memory / 2**20:,.0f} MiB > gpu_memory {b.gpu_memory / 2**20:,.0f} MiB")
            excess = max(excess, memory / b.gpu_memory - 1)
    return BudgetCheck(int(memory), source, violations, excess)


def over_budget_everywhere(space: Space, limit: int = 60) -> str | None:
    """A warning when every extreme spec of `space` (see spec.space.extremes) breaks its budgets on
    the CPU check (parameters, FLOPs, estimated memory): the search would then refuse most trials.
    None when no budget is set, the space has no dimensions, or some extreme fits. Models are built
    without pretrained weights (the counts do not depend on them); each distinct one once."""
    if not space.dims:
        return None
    seen: dict[str, list[str]] = {}
    first: tuple[str, list[str]] | None = None
    for label, suggest in extremes(space, limit):
        try:
            spec = space.resolve(suggest)
        except SpecError:
            continue  # validate / run report these themselves
        b = spec.search.budgets
        if b.max_params is None and b.max_flops is None and b.gpu_memory is None:
            return None
        key = f"{spec.model.model_dump_json()}|{spec.train.batch_size}|{spec.train.optimizer.name}|{spec.search.budgets}"
        if key not in seen:
            model = build_model(spec, pretrained=False)
            seen[key] = check_budgets(spec, summarize(model, spec.model.input_shape), model, torch.device("cpu")).violations
        if not seen[key]:
            return None
        first = first or (label, seen[key])
    if first is None:
        return None
    label, violations = first
    return (f"every extreme spec checked is over budget (e.g. {label}: {'; '.join(violations)}): most trials would "
            "be refused before training; raise search.budgets or narrow the space")
