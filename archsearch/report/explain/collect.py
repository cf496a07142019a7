"""One pass of a model over a split: labels, probabilities and penultimate features as numpy arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from archsearch.data.base import BatchSource
from archsearch.report.explain.layers import capture_input, classifier

BATCH = 256


@dataclass(frozen=True)
class Predictions:
    """What a model says about every image of a split (in the source's order).

    Attributes:
        labels: int64 [N] true classes.
        probs: float32 [N, K] softmax outputs.
        feature_index: int64 [M] the images whose features were kept (sorted).
        features: float32 [M, D] the input of the last Linear layer for those images, or None.
        feature_layer: name of that Linear layer ('' when no features were asked for).
    """

    labels: np.ndarray
    probs: np.ndarray
    feature_index: np.ndarray
    features: np.ndarray | None
    feature_layer: str = ""

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self.labels) else 0.0


def stratified_sample(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of up to `per_class` images of each class, drawn at random (fixed seed)."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, but got {per_class=}.")
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


@torch.no_grad()
def predict(model: nn.Module, source: BatchSource, feature_index: np.ndarray | None = None) -> Predictions:
    """Probabilities for every image of `source`; penultimate features for `feature_index` only.

    Args:
        model: the built model (eval mode is set and restored).
        source: the split, iterated in its stored order.
        feature_index: which images' features to keep (None: no features, and no Linear needed);
            keeping a subset bounds memory for wide layers (e.g. 6,272 inputs to the classifier).
    """
    keep = None
    layer_name = ""
    if feature_index is not None:
        keep = np.zeros(source.num_samples, bool)
        keep[np.asarray(feature_index, np.int64)] = True
        layer_name, layer = classifier(model)
    was_training = model.training
    model.eval()
    probs, labels, feats = [], [], []
    start = 0
    try:
        for x, y in source.batches(BATCH):
            if keep is None:
                out = model(x)
            else:
                with capture_input(layer) as seen:
                    out = model(x)
                rows = torch.from_numpy(np.flatnonzero(keep[start:start + len(y)])).to(seen[-1].device)
                feats.append(seen[-1].index_select(0, rows).float().cpu())
            probs.append(out.float().softmax(1).cpu())
            labels.append(y.cpu())
            start += len(y)
    finally:
        model.train(was_training)
    return Predictions(
        labels=torch.cat(labels).numpy() if labels else np.zeros(0, np.int64),
        probs=torch.cat(probs).numpy() if probs else np.zeros((0, 0), np.float32),
        feature_index=np.flatnonzero(keep) if keep is not None else np.zeros(0, np.int64),
        features=torch.cat(feats).numpy() if keep is not None and feats else None,
        feature_layer=layer_name,
    )


@torch.no_grad()
def images_at(source: BatchSource, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
    """The normalised images at `indices` (in that order), [n, C, H, W] on the source's device."""
    wanted = np.asarray(indices, np.int64)
    if len(wanted) == 0:
        return torch.zeros(0, *source.input_shape, device=source.device)
    if wanted.min() < 0 or wanted.max() >= source.num_samples:
        raise IndexError(f"image index out of range 0..{source.num_samples - 1}: {wanted.tolist()}")
    found: dict[int, torch.Tensor] = {}
    start = 0
    targets = set(wanted.tolist())
    for x, _ in source.batches(BATCH):
        for i in range(len(x)):
            if start + i in targets:
                found[start + i] = x[i]
        start += len(x)
        if len(found) == len(targets):
            break
    return torch.stack([found[int(i)] for i in wanted])
