"""Ensembles: the mean of several runs' softmax probabilities, measured on the same held-out split.

Each member reads the split with its own input shape and normalisation (a 28×28 CNN and a ResNet
at 224×224 can be combined), so members must agree on the images, not on the pipeline: same class
names, and the same samples in the same order (the split's fingerprint and labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from archsearch.data import prepare_train_val
from archsearch.data.base import BatchSource
from archsearch.data.testsplit import load_test
from archsearch.errors import ArchsearchError
from archsearch.evaluate.metrics import classification_metrics
from archsearch.evaluate.run import load_run
from archsearch.train.loop import EVAL_BATCH
from archsearch.train.precision import resolve_device


class EnsembleError(ArchsearchError):
    """Runs that cannot be ensembled (fewer than two, other classes, other test images)."""


@dataclass(frozen=True)
class Member:
    """run: the run / export folder; probs: float32 [N, K] softmax outputs; accuracy on the split."""

    run: Path
    probs: np.ndarray
    accuracy: float


@dataclass(frozen=True)
class EnsembleResult:
    """The members, the averaged probabilities and the ensemble's metrics on one split.

    Attributes:
        split: val | test.
        classes: class names, index = label.
        labels: int64 [N] true classes.
        members: each run with its probabilities and accuracy.
        probs: float32 [N, K], the mean of the members' probabilities.
        metrics: classification_metrics of the ensemble's argmax.
        fingerprint: the split's fingerprint (identical for every member).
    """

    split: str
    classes: list[str]
    labels: np.ndarray
    members: list[Member]
    probs: np.ndarray
    metrics: dict
    fingerprint: str

    @property
    def accuracy(self) -> float:
        return float(self.metrics["accuracy"])

    def report(self) -> dict:
        """JSON-ready: each member's accuracy and the ensemble's gain over it, the ensemble's metrics."""
        return {
            "split": self.split,
            "n": int(len(self.labels)),
            "fingerprint": self.fingerprint,
            "members": [
                {"run": str(m.run), "accuracy": m.accuracy, "gain": self.accuracy - m.accuracy}
                for m in self.members
            ],
            "ensemble": {"accuracy": self.accuracy, "best_member_gain": self.accuracy - max(m.accuracy for m in self.members),
                         **{k: v for k, v in self.metrics.items() if k != "accuracy"}},
        }


@torch.no_grad()
def predict_proba(model: torch.nn.Module, source: BatchSource) -> np.ndarray:
    """Softmax probabilities float32 [N, K] of a model (eval mode, fp32) over a split in stored order."""
    model.eval()
    out = [model(x).float().softmax(1).cpu() for x, _ in source.batches(EVAL_BATCH)]
    return torch.cat(out).numpy()


def _split(run: Path, split: str, device: torch.device, data_dir: str | None) -> tuple:
    spec, model, metrics = load_run(run, device)
    if split == "test":
        norm = metrics.get("normalization")
        if not norm:
            raise EnsembleError(f"{run / 'metrics.json'} has no normalization; it was not written by archsearch train / export")
        source, classes = load_test(spec.data, spec.model.input_shape, mean=norm["mean"], std=norm["std"],
                                    device=device, data_dir=data_dir)
    else:
        data = prepare_train_val(spec.data, spec.model.input_shape,
                                 num_classes=spec.model.num_classes, device=device, data_dir=data_dir)
        source, classes = data.val, data.classes
    return model, source, list(metrics.get("classes") or classes)


def evaluate_ensemble(runs: Sequence[Path], split: str = "test", *, device: str | None = None,
                      data_dir: str | None = None) -> EnsembleResult:
    """Average the softmax probabilities of `runs` and measure members and ensemble on `split`.

    Args:
        runs: two or more run directories or export bundles (spec.yaml, best.pt, metrics.json).
        split: test (the held-out split, read through load_test) or val.
        device: cpu | cuda | cuda:N | auto.
        data_dir: a folder searched first for dataset files.

    Raises:
        EnsembleError: fewer than two distinct runs, different classes, or different images.
    """
    if split not in ("val", "test"):
        raise EnsembleError(f"--split: expected val or test, got {split!r}")
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise EnsembleError(f"an ensemble needs at least two runs, got {len(runs)}: add --ensemble OTHER_RUN")
    seen: set[Path] = set()
    for r in runs:
        key = r.resolve()
        if key in seen:
            raise EnsembleError(f"{r} is listed twice; an ensemble's members must be different runs")
        seen.add(key)
    dev = resolve_device(device)
    first_run = runs[0]
    members: list[Member] = []
    ref_classes: list[str] = []
    ref_labels = torch.zeros(0)
    ref_fp = ""
    for run in runs:
        model, source, classes = _split(run, split, dev, data_dir)
        if not members:
            ref_classes, ref_labels, ref_fp = classes, source.labels, source.fingerprint()
        elif classes != ref_classes:
            raise EnsembleError(
                f"{run} predicts other classes than {first_run}: {classes[:6]}{'…' if len(classes) > 6 else ''} "
                f"vs {ref_classes[:6]}{'…' if len(ref_classes) > 6 else ''}; ensemble runs of one dataset"
            )
        elif source.fingerprint() != ref_fp or not torch.equal(source.labels, ref_labels):
            raise EnsembleError(
                f"{run} and {first_run} see different {split} images (fingerprints {source.fingerprint()[:12]} vs "
                f"{ref_fp[:12]}); members need the same data.dataset, path, test_fraction / test_size and, for val, "
                "val_fraction and split_seed"
            )
        probs = predict_proba(model, source)
        if probs.shape[1] != len(ref_classes):
            raise EnsembleError(f"{run}: the model has {probs.shape[1]} outputs for {len(ref_classes)} classes")
        labels = ref_labels.numpy()
        members.append(Member(run, probs, float((probs.argmax(1) == labels).mean())))
        del model
    labels = ref_labels.numpy()
    mean = np.mean([m.probs for m in members], axis=0, dtype=np.float64).astype(np.float32)
    return EnsembleResult(split, ref_classes, labels, members, mean,
                          classification_metrics(labels, mean.argmax(1), ref_classes), ref_fp)
