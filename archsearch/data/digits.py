"""scikit-learn's 8×8 digits: no official test split, so a fixed stratified test part is carved."""

from __future__ import annotations

import numpy as np
import torch

from archsearch.data.cache import cached_tensors
from archsearch.data.memory import TensorPool
from archsearch.data.splits import carve_test

CLASSES = [str(i) for i in range(10)]
# what `image` is in a bundle's normalisation formula, for a user feeding load_digits() images
PIXELS = "load_digits() pixels (0..16) scaled to 0..255 first: image = round(pixels * 255 / 16)"


def _decode() -> dict:
    from sklearn.datasets import load_digits

    d = load_digits()
    # values 0..16 → 0..255
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return {
        "images": torch.from_numpy(images).unsqueeze(1).contiguous(),
        "labels": torch.from_numpy(d.target.astype(np.int64)),
        "classes": CLASSES,
        "source": "sklearn.datasets.load_digits",
    }


def _pool() -> TensorPool:
    obj, hit = cached_tensors("digits-all", _decode)
    return TensorPool(obj["images"], obj["labels"], list(obj["classes"]), obj["source"], hit)


def train_pool(test_fraction: float) -> TensorPool:
    """Everything but the carved test part (data.test_fraction, fixed seed)."""
    pool = _pool()
    rest, _ = carve_test(pool.labels, test_fraction)
    return pool.subset(rest)


def heldout_pool(test_fraction: float) -> TensorPool:
    """The carved test part. Only archsearch.data.testsplit may call this."""
    pool = _pool()
    _, test = carve_test(pool.labels, test_fraction)
    return pool.subset(test)
