"""Seeded stratified splits: the carved test part, train/val, and size-limited subsets."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from archsearch.errors import DataError

TEST_CARVE_SEED = 1234  # fixed forever: the carved test part must not move with split_seed
TEST_SUBSET_SEED = 0  # test_size subsets are the same whatever split_seed is


def _labels_np(labels: torch.Tensor | np.ndarray | list[int]) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        return labels.cpu().numpy()
    return np.asarray(labels)


def _allocate(counts: np.ndarray, k: int, *, at_least_one: bool, leave_one: bool) -> np.ndarray:
    """How many of each class to pick so that `k` in all are picked, proportional to `counts`.

    Largest-remainder rounding; `at_least_one` gives every class one pick, `leave_one` leaves
    every class with two or more samples one unpicked.
    """
    lo = np.minimum(counts, 1) if at_least_one else np.zeros_like(counts)
    hi = np.where(counts >= 2, counts - 1, counts) if leave_one else counts.copy()
    hi = np.maximum(hi, lo)
    exact = counts * k / counts.sum()
    take = np.clip(np.floor(exact).astype(np.int64), lo, hi)
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    while take.sum() < k and (take < hi).any():
        for c in order:
            if take.sum() < k and take[c] < hi[c]:
                take[c] += 1
    while take.sum() > k and (take > lo).any():
        c = int(np.argmax(np.where(take > lo, take, -1)))
        take[c] -= 1
    return take


def _draw(labels: np.ndarray, k: int, seed: int, *, at_least_one: bool, leave_one: bool) -> np.ndarray:
    """Sorted indices of a seeded stratified pick of (about) k samples."""
    classes, counts = np.unique(labels, return_counts=True)
    take = _allocate(counts, k, at_least_one=at_least_one, leave_one=leave_one)
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), size=int(t), replace=False) for c, t in zip(classes, take)]
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, dtype=np.int64)


def _split(labels: np.ndarray, fraction: float, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(rest, part) with `part` a stratified share `fraction`.

    scikit-learn's train_test_split(stratify=...) where it can; for tiny data it refuses (a class
    of one, fewer held-out samples than classes), and a proportional per-class draw is used.
    """
    idx = np.arange(len(labels))
    k = int(np.ceil(fraction * len(labels)))
    if len(labels) < 2 or k >= len(labels):
        raise DataError(f"cannot split {what}: only {len(labels)} samples")
    try:
        a, b = train_test_split(idx, test_size=fraction, stratify=labels, random_state=seed, shuffle=True)
        return np.sort(a), np.sort(b)
    except ValueError:
        part = _draw(labels, k, seed, at_least_one=False, leave_one=True)
    if len(part) == 0:
        counts = dict(sorted(Counter(labels.tolist()).items()))
        raise DataError(f"cannot split {what}: class sizes {counts} leave nothing to hold out")
    return np.setdiff1d(idx, part), part


def carve_test(labels: torch.Tensor | np.ndarray | list[int], fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(rest, test) indices of a pool without an official test split; fixed seed, stratified.

    Args:
        labels: labels of the whole pool.
        fraction: share held out as test (data.test_fraction).
    """
    return _split(_labels_np(labels), fraction, TEST_CARVE_SEED, f"a test part (data.test_fraction={fraction})")


def train_val(
    labels: torch.Tensor | np.ndarray | list[int], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: a stratified share `fraction` of the pool becomes val.

    Args:
        labels: labels of the train pool.
        fraction: data.val_fraction.
        seed: data.split_seed.
    """
    return _split(_labels_np(labels), fraction, seed, f"a validation part (data.val_fraction={fraction})")


def subset(labels: torch.Tensor | np.ndarray | list[int], size: int | None, field: str, seed: int) -> np.ndarray:
    """Sorted indices of a stratified subset of `size` samples (all when size is None).

    Args:
        labels: labels of the split.
        size: wanted number of samples, or None for all.
        field: the spec field asking (named in errors), e.g. "data.train_size".
        seed: seed of the draw.
    """
    y = _labels_np(labels)
    n = len(y)
    if size is None or size == n:
        return np.arange(n)
    if size > n:
        raise DataError(f"{field}={size} but only {n} samples are available: lower {field} or remove it", field)
    n_classes = len(np.unique(y))
    if size < n_classes:
        raise DataError(
            f"{field}={size} is smaller than the number of classes ({n_classes}): "
            f"a stratified subset needs at least one sample a class", field
        )
    return _draw(y, size, seed, at_least_one=True, leave_one=False)


def class_counts(labels: torch.Tensor | np.ndarray | list[int], classes: list[str]) -> dict[str, int]:
    """{class name: count} for every class (zero included)."""
    counts = np.bincount(_labels_np(labels).astype(np.int64), minlength=len(classes))
    return {name: int(c) for name, c in zip(classes, counts)}


def imbalance_ratio(counts: dict[str, int]) -> float | None:
    """max/min of the class counts (None when a class is empty or there are none)."""
    values = list(counts.values())
    if not values or min(values) == 0:
        return None
    return max(values) / min(values)
