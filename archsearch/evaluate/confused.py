"""The most confused class pairs of a confusion matrix and example images of each pair."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from archsearch.data.base import BatchSource


def most_confused(confusion_matrix: Sequence[Sequence[int]] | np.ndarray, k: int) -> list[tuple[int, int, int]]:
    """The k largest off-diagonal cells of a confusion matrix (rows = true class, columns = predicted).

    Args:
        confusion_matrix: square counts, as classification_metrics returns them.
        k: how many pairs at most; empty cells are never returned.

    Returns:
        (true, pred, count) triples, largest count first; ties by true then pred class.
    """
    cm = np.asarray(confusion_matrix)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion_matrix must be square, but got shape {cm.shape}.")
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative int, but got {k=}.")
    cells = [(int(t), int(p), int(cm[t, p])) for t, p in zip(*np.nonzero(cm)) if t != p]
    cells.sort(key=lambda c: (-c[2], c[0], c[1]))
    return cells[:k]


def confused_examples(
    source: BatchSource, y_true: np.ndarray | torch.Tensor, y_pred: np.ndarray | torch.Tensor,
    pairs: Iterable[Sequence[int]], per_pair: int = 8, batch_size: int = 1024,
) -> dict[str, np.ndarray]:
    """Raw images of the samples predicted as `pred` while labelled `true`, for each pair.

    Images are read with `source.raw_batches` in stored order (the order of `y_true` / `y_pred`),
    so they are the un-normalised, un-augmented uint8 pixels of the split.

    Args:
        source: the split the predictions were made on (the test split when a bundle is exported).
        y_true: int labels of every sample of `source`, in stored order (source.labels).
        y_pred: the model's predicted classes, same order.
        pairs: (true, pred) or (true, pred, count) items, e.g. from most_confused.
        per_pair: at most this many examples per pair (the first ones in stored order).
        batch_size: samples read per raw batch.

    Returns:
        {"images": uint8 [N, C, H, W], "true": int64 [N], "pred": int64 [N]}, grouped by pair in
        the order of `pairs`; what `confused.npz` of an export bundle holds.
    """
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if len(y_true) != source.num_samples or len(y_pred) != source.num_samples:
        raise ValueError(f"y_true and y_pred must hold one label per sample of the source ({source.num_samples}), "
                         f"but got {len(y_true)} and {len(y_pred)}.")
    if not np.array_equal(y_true, source.labels.numpy()):
        raise ValueError("y_true must be the source's labels in stored order (source.labels).")
    if not isinstance(per_pair, int) or per_pair < 1:
        raise ValueError(f"per_pair must be a positive int, but got {per_pair=}.")
    chosen: list[np.ndarray] = []
    for pair in pairs:
        t, p = int(pair[0]), int(pair[1])
        chosen.append(np.flatnonzero((y_true == t) & (y_pred == p))[:per_pair])
    index = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    wanted = np.zeros(source.num_samples, dtype=bool)
    wanted[index] = True
    found: dict[int, np.ndarray] = {}
    shape: tuple[int, ...] | None = None
    start = 0
    for images, _ in source.raw_batches(batch_size, None):
        n = len(images)
        shape = tuple(images.shape[1:])
        hits = np.flatnonzero(wanted[start:start + n])
        if len(hits):
            batch = images[torch.as_tensor(hits, device=images.device)].cpu().numpy()
            found.update({start + int(i): img for i, img in zip(hits, batch)})
        start += n
        if len(found) == len(set(index.tolist())):
            break
    if shape is None:  # an empty source
        shape = tuple(source.input_shape)
    picked = [found[int(i)] for i in index]
    return {
        "images": np.stack(picked).astype(np.uint8) if picked else np.zeros((0, *shape), dtype=np.uint8),
        "true": y_true[index].astype(np.int64),
        "pred": y_pred[index].astype(np.int64),
    }
