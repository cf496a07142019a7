"""Misclassified test images grouped by (true class, predicted class), most frequent pairs first."""

from __future__ import annotations

import numpy as np
from PIL import Image

from archsearch.report.explain import draw


def misclassified(labels: np.ndarray, probs: np.ndarray, per_pair: int | None = None) -> dict[tuple[int, int], np.ndarray]:
    """Indices of the wrong predictions, per (true, predicted) pair.

    Args:
        labels: int [N] true classes.
        probs: float [N, K] predicted probabilities.
        per_pair: keep at most this many images per pair (None: all).

    Returns:
        (true, predicted) → indices, pairs ordered by how many errors they hold (ties by class),
        images within a pair by decreasing confidence in the wrong class.
    """
    labels = np.asarray(labels)
    predicted = np.asarray(probs).argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    groups: dict[tuple[int, int], list[int]] = {}
    for i in wrong:
        groups.setdefault((int(labels[i]), int(predicted[i])), []).append(int(i))
    out = {}
    for pair in sorted(groups, key=lambda p: (-len(groups[p]), p)):
        idx = np.array(groups[pair], np.int64)
        idx = idx[np.argsort(-probs[idx, pair[1]], kind="stable")]
        out[pair] = idx if per_pair is None else idx[:per_pair]
    return out


def render_gallery(pairs: dict[tuple[int, int], np.ndarray], counts: dict[tuple[int, int], int],
                   images: dict[int, np.ndarray], probs: np.ndarray, classes: list[str],
                   total_pairs: int, tile_px: int = 64) -> Image.Image:
    """One row per pair: 'true → predicted (count)' and its images with the wrong class's probability.

    Args:
        pairs: the pairs to draw → image indices (see `misclassified`).
        counts: errors per pair (all of them, not only those drawn).
        images: index → uint8 [H, W, 3] display image.
        probs: float [N, K] probabilities, indexed like the images.
        classes: class names.
        total_pairs: how many pairs have errors at all (the figure may show fewer).
    """
    rows = []
    for (t, p), idx in pairs.items():
        tiles = [draw.captioned(draw.tile(images[int(i)], tile_px), [f"#{int(i)} p={probs[i, p]:.2f}"], draw.GREY, 10)
                 for i in idx]
        rows.append(draw.labelled(draw.hstack(tiles, 4), f"true '{classes[t]}' → predicted '{classes[p]}'  "
                                  f"({counts[(t, p)]} error{'s' if counts[(t, p)] != 1 else ''})", 12, draw.RED))
    if not rows:
        rows = [draw.labelled(Image.new("RGB", (300, 1), draw.WHITE), "no misclassified image", 13, draw.GREEN)]
    n_err = sum(counts.values())
    return draw.page(
        "Misclassification gallery",
        draw.vstack(rows, 10),
        f"{n_err} errors in {total_pairs} (true, predicted) pairs; {len(pairs)} most frequent pairs shown, "
        "most confident errors first (#test index, p = probability of the wrong class)",
    )
