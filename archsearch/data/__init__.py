"""Datasets → uint8 tensors (cached), seeded stratified splits, on-device batch augmentation."""

from __future__ import annotations

from archsearch.data.base import BatchSource, TrainVal
from archsearch.data.prepare import prepare_train_val

__all__ = ["BatchSource", "TrainVal", "prepare_train_val"]
