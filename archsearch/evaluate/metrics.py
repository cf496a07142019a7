"""Classification metrics (scikit-learn) and latency / throughput of a model."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro / weighted precision-recall-F1, per-class report and confusion matrix."""
    labels = list(range(len(classes)))
    out: dict = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "n": int(len(y_true)),
    }
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        out[avg] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    out["macro_f1"] = out["macro"]["f1"]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    out["per_class"] = {
        c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, c in enumerate(classes)
    }
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


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
        med = float(np.median(times))
        out[f"ms_per_image_batch{bs}"] = 1000 * med / bs
        out[f"img_per_s_batch{bs}"] = bs / med
    return out
