"""Selection metrics from predictions, computed with torch (cheap enough for every epoch)."""

from __future__ import annotations

import torch

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def confusion(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[true, predicted] counts."""
    idx = y_true.long().cpu() * num_classes + y_pred.long().cpu()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def metric_from_confusion(cm: torch.Tensor, name: str) -> float:
    cm = cm.double()
    tp = cm.diag()
    if name == "accuracy":
        return float(tp.sum() / cm.sum().clamp(min=1))
    support = cm.sum(1)
    present = support > 0
    recall = tp / support.clamp(min=1)
    if name == "balanced_accuracy":
        return float(recall[present].mean()) if present.any() else 0.0
    if name == "macro_f1":
        precision = tp / cm.sum(0).clamp(min=1)
        f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
        return float(f1[present].mean()) if present.any() else 0.0
    raise ValueError(f"unknown metric {name!r}; expected one of: {', '.join(METRICS)}")
