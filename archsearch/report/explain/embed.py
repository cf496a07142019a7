"""2-D maps of the penultimate features (PCA and t-SNE, scikit-learn) and their scatter plots."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from archsearch.report.explain import draw

METHODS = ("pca", "tsne")


class Embedding(NamedTuple):
    """coords: float [N, 2]; method: 'pca' | 'tsne'; explained: PCA's explained-variance ratio
    of the two axes (empty for t-SNE)."""

    coords: np.ndarray
    method: str
    explained: tuple[float, ...] = ()


def embed_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> Embedding:
    """Project feature vectors [N, D] to 2-D.

    t-SNE runs on the first 50 principal components when D > 50 (the usual speed-up), with
    perplexity min(30, (N - 1) / 3) so small sets work too.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, but got {method=}.")
    f = np.asarray(features, np.float64).reshape(len(features), -1)
    n = len(f)
    if n < 3:
        raise ValueError(f"a 2-D map needs at least 3 points, but got {n=}.")
    from sklearn.decomposition import PCA

    if method == "pca":
        dims = min(2, f.shape[1], n)
        pca = PCA(n_components=dims, random_state=seed).fit(f)
        coords = pca.transform(f)
        if dims < 2:
            coords = np.hstack([coords, np.zeros((n, 2 - dims))])
        return Embedding(coords, "pca", tuple(float(v) for v in pca.explained_variance_ratio_))
    from sklearn.manifold import TSNE

    if f.shape[1] > 50:
        f = PCA(n_components=min(50, n), random_state=seed).fit_transform(f)
    tsne = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed)
    return Embedding(tsne.fit_transform(f), "tsne")


def render_embedding(emb: Embedding, labels: np.ndarray, predicted: np.ndarray, classes: list[str],
                     size: int = 560, title: str = "") -> Image.Image:
    """Scatter plot, one colour per true class; a wrong prediction is drawn as a hollow ring."""
    c = np.asarray(emb.coords, float)
    lo, hi = c.min(0), c.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    xy = (c - lo) / span * (size - 20) + 10
    xy[:, 1] = size - xy[:, 1]  # y grows upwards
    plot = Image.new("RGB", (size, size), draw.WHITE)
    d = ImageDraw.Draw(plot)
    d.rectangle([0, 0, size - 1, size - 1], outline=(200, 200, 200))
    colors = draw.class_colors(len(classes))
    r = 3 if len(c) <= 2000 else 2
    order = np.argsort(predicted != labels, kind="stable")  # wrong ones on top
    for i in order:
        x, y = xy[i]
        col = colors[int(labels[i])]
        if predicted[i] == labels[i]:
            d.ellipse([x - r, y - r, x + r, y + r], fill=col)
        else:
            d.ellipse([x - r - 2, y - r - 2, x + r + 2, y + r + 2], outline=col, width=2)
    legend = [draw.hstack([Image.new("RGB", (12, 12), col), _text(name)], 4)
              for name, col in zip(classes, colors)]
    legend.append(_text("○ = misclassified (ring in the true class's colour)"))
    axes = ("PC1", "PC2") if emb.method == "pca" else ("t-SNE 1", "t-SNE 2")
    var = (f"; explained variance {emb.explained[0]:.1%} + {emb.explained[1]:.1%}"
           if len(emb.explained) >= 2 else "")
    body = draw.hstack([draw.labelled(plot, f"x: {axes[0]}, y: {axes[1]}{var}", 11, draw.GREY),
                        draw.vstack(legend, 3)], 12)
    name = "PCA" if emb.method == "pca" else "t-SNE"
    return draw.page(title or f"{name} of the penultimate features", body, f"{len(c)} test images, coloured by true class")


def _text(s: str) -> Image.Image:
    w, h = draw.text_size(s, 11)
    img = Image.new("RGB", (w + 2, h), draw.WHITE)
    draw.put_text(ImageDraw.Draw(img), (0, 0), s, 11, draw.BLACK)
    return img
