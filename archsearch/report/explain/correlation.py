"""The class-correlation matrix: how alike the penultimate representations of two classes are.

Entry (i, j) is the mean Pearson correlation between the feature vectors of an image of class i
and an image of class j, over all such pairs (an image is never paired with itself). A model that
separates classes well has a diagonal near 1 and smaller values off it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from archsearch.report.explain import draw


class Correlation(NamedTuple):
    """matrix: float [K, K] (NaN where a class has too few usable images);
    counts: int [K] images used per class (vectors with zero variance are left out)."""

    matrix: np.ndarray
    counts: np.ndarray

    @property
    def diagonal_mean(self) -> float:
        return float(np.nanmean(np.diag(self.matrix)))

    @property
    def off_diagonal_mean(self) -> float:
        k = len(self.matrix)
        return float(np.nanmean(self.matrix[~np.eye(k, dtype=bool)])) if k > 1 else float("nan")


def class_correlation(features: np.ndarray, labels: np.ndarray, num_classes: int) -> Correlation:
    """Mean Pearson correlation between the feature vectors of every class pair.

    Args:
        features: float [N, D] penultimate representations.
        labels: int [N] their classes.
        num_classes: K.
    """
    f = np.asarray(features, np.float64).reshape(len(features), -1)
    labels = np.asarray(labels)
    if len(f) != len(labels):
        raise ValueError(f"one label per feature vector, but got {len(f)=} and {len(labels)=}.")
    f = f - f.mean(1, keepdims=True)
    norm = np.linalg.norm(f, axis=1)
    usable = norm > 1e-12 * max(1.0, float(norm.max(initial=0.0)))  # a constant vector has no correlation
    z = f[usable] / norm[usable, None]
    y = labels[usable]
    counts = np.bincount(y, minlength=num_classes)[:num_classes]
    onehot = np.zeros((len(y), num_classes))
    onehot[np.arange(len(y)), y] = 1.0
    # Σ over pairs of r(a, b) per class block, via class sums of the unit vectors: (Σ_a z_a)·(Σ_b z_b)
    sums = onehot.T @ z  # [K, D]
    total = sums @ sums.T
    pairs = np.outer(counts, counts).astype(float)
    diag = np.arange(num_classes)
    total[diag, diag] -= counts  # drop the self-pairs (each contributes r = 1)
    pairs[diag, diag] -= counts
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.where(pairs > 0, total / np.where(pairs > 0, pairs, 1), np.nan)
    return Correlation(np.clip(matrix, -1.0, 1.0), counts)


def render_correlation(corr: Correlation, classes: list[str], title: str, note: str = "",
                       cell_px: int | None = None) -> Image.Image:
    """The matrix as a heat map (blue −1 … white 0 … red 1) with the values written in the cells."""
    k = len(classes)
    cell = cell_px or (48 if k <= 12 else 30 if k <= 25 else 16)
    label_w = min(160, max(draw.text_size(c, 11)[0] for c in classes) + 8)
    grid = Image.new("RGB", (label_w + k * cell, label_w + k * cell), draw.WHITE)
    d = ImageDraw.Draw(grid)
    colors = draw.colormap((corr.matrix + 1) / 2, "rdbu")
    for i in range(k):
        for j in range(k):
            x0, y0 = label_w + j * cell, label_w + i * cell
            d.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=tuple(int(c) for c in colors[i, j]))
            v = corr.matrix[i, j]
            if cell >= 30:
                s = "–" if np.isnan(v) else f"{v:.2f}"
                tw, th = draw.text_size(s, 10)
                ink = draw.WHITE if not np.isnan(v) and abs(v) > 0.6 else draw.BLACK
                draw.put_text(d, (x0 + (cell - tw) // 2, y0 + (cell - th) // 2), s, 10, ink)
        name = classes[i][:20]
        draw.put_text(d, (2, label_w + i * cell + cell // 2 - 6), name, 11, draw.BLACK)
        col = Image.new("RGB", (label_w, cell), draw.WHITE)
        draw.put_text(ImageDraw.Draw(col), (2, cell // 2 - 6), name, 11, draw.BLACK)
        grid.paste(col.rotate(90, expand=True), (label_w + i * cell, 0))
    body = draw.hstack([grid, draw.colorbar(-1.0, 1.0, "rdbu", k * cell)], 8)
    lo, hi = (int(corr.counts.min()), int(corr.counts.max())) if len(corr.counts) else (0, 0)
    summary = (f"diagonal mean {corr.diagonal_mean:.3f}, off-diagonal mean {corr.off_diagonal_mean:.3f}; "
               f"row i, column j: class i's images against class j's; {lo if lo == hi else f'{lo}–{hi}'} images per class")
    return draw.page(title, body, f"{note}\n{summary}" if note else summary)
