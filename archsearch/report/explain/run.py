"""explain_run(run_dir): every explain figure of a run or export bundle, written as PNGs + index.html.

Reads the test split through archsearch.data.testsplit.load_test (explain is an evaluation
command), normalised as in training (metrics.json's normalization). Layer problems are found
before any test image is read.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from archsearch.data.testsplit import load_test
from archsearch.evaluate.run import load_run
from archsearch.fs import ensure_writable_dir, write_json
from archsearch.report.explain import draw
from archsearch.report.explain.collect import images_at, predict, stratified_sample
from archsearch.report.explain.correlation import class_correlation, render_correlation
from archsearch.report.explain.embed import embed_2d, render_embedding
from archsearch.report.explain.filters import feature_maps, first_layer_filters, render_feature_maps, render_filters
from archsearch.report.explain.gallery import misclassified, render_gallery
from archsearch.report.explain.gradcam import grad_cam, render_gradcam
from archsearch.report.explain.layers import ExplainError, classifier, find_layer
from archsearch.train.precision import resolve_device

FIGURES = ("gradcam", "filters", "feature-maps", "correlation", "gallery", "embedding")
NEEDS_CONV = frozenset({"gradcam", "filters", "feature-maps"})
NEEDS_FEATURES = frozenset({"correlation", "embedding"})
MAX_PAIRS = 24  # gallery rows
SEED = 0


@dataclass(frozen=True)
class Figure:
    name: str
    file: str
    caption: str


@dataclass
class ExplainResult:
    """out: the folder written; figures: what was drawn; summary: the numbers behind the figures
    (also written to explain.json)."""

    out: Path
    figures: list[Figure] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def check_figures(names: Iterable[str] | None) -> tuple[str, ...]:
    """The figures asked for, in FIGURES order; unknown names → ExplainError listing the valid ones."""
    if not names:
        return FIGURES
    wanted = {n.strip().lower().replace("_", "-") for n in names}
    unknown = sorted(wanted - set(FIGURES))
    if unknown:
        raise ExplainError(f"--only: unknown figure {', '.join(map(repr, unknown))}; expected one of: {', '.join(FIGURES)}")
    return tuple(f for f in FIGURES if f in wanted)


@contextmanager
def _step(echo: Callable[[str], None], label: str, spinner: bool) -> Iterator[None]:
    t0 = time.perf_counter()
    if spinner:
        from rich.console import Console

        with Console(stderr=True).status(f"{label} …"):
            yield
    else:
        yield
    echo(f"  {label}: {time.perf_counter() - t0:.1f} s")


def explain_run(
    run_dir: Path,
    out: Path | None = None,
    *,
    images: int = 8,
    per_class: int = 100,
    layer: str | None = None,
    index: int = 0,
    figures: Iterable[str] | None = None,
    device: str | None = None,
    data_dir: str | None = None,
    echo: Callable[[str], None] = print,
    progress: bool = False,
) -> ExplainResult:
    """Draw the explain figures of a run directory or export bundle.

    Args:
        run_dir: holds spec.yaml, best.pt and metrics.json.
        out: where figures go (default run_dir/explain).
        images: Grad-CAM images per panel (correct / wrong) and gallery images per pair.
        per_class: test images per class for the correlation matrix and the 2-D maps.
        layer: Grad-CAM target module (default: the last conv layer).
        index: the test image whose feature maps are drawn.
        figures: a subset of FIGURES (default: all).
        device: cpu | cuda | cuda:N | auto.
        data_dir: a folder searched first for dataset files.
        echo: receives one line per figure.
        progress: show a spinner during long steps (t-SNE) on stderr.
    """
    wanted = check_figures(figures)
    for what, value in (("--images", images), ("--per-class", per_class)):
        if value < 1:
            raise ExplainError(f"{what} must be at least 1, got {value}")
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    spec, model, metrics = load_run(run_dir, dev)
    # fail before reading any test image
    layer_name = find_layer(model, layer)[0] if NEEDS_CONV & set(wanted) or layer is not None else None
    feature_layer = classifier(model)[0] if NEEDS_FEATURES & set(wanted) else None
    out = Path(out) if out is not None else run_dir / "explain"
    ensure_writable_dir(out, "--out")

    norm = metrics.get("normalization")
    if not norm:
        raise ExplainError(f"{run_dir / 'metrics.json'} has no normalization; it was not written by archsearch train / export")
    source, classes = load_test(spec.data, spec.model.input_shape, mean=norm["mean"], std=norm["std"],
                                device=dev, data_dir=data_dir)
    if not 0 <= index < source.num_samples:
        raise ExplainError(f"--index {index}: the test split has images 0..{source.num_samples - 1}")
    labels = source.labels.numpy()
    sample = stratified_sample(labels, per_class, SEED) if NEEDS_FEATURES & set(wanted) else None
    t0 = time.perf_counter()
    pred = predict(model, source, sample)
    predicted = pred.predicted
    echo(f"{run_dir}: {len(labels)} test images, accuracy {pred.accuracy:.4f} on {dev} "
         f"({time.perf_counter() - t0:.1f} s); figures → {out}")

    rng = np.random.default_rng(SEED)
    correct_idx = np.sort(rng.permutation(np.flatnonzero(pred.correct))[:images])
    wrong_idx = np.sort(rng.permutation(np.flatnonzero(~pred.correct))[:images])
    errors = misclassified(labels, pred.probs)
    shown_pairs = {p: idx[:images] for p, idx in list(errors.items())[:MAX_PAIRS]}
    needed = set()
    if "gradcam" in wanted:
        needed |= set(correct_idx.tolist()) | set(wrong_idx.tolist())
    if "gallery" in wanted:
        needed |= {int(i) for idx in shown_pairs.values() for i in idx}
    if "feature-maps" in wanted:
        needed.add(index)
    order = sorted(needed)
    batch = images_at(source, order)
    tensors = dict(zip(order, batch))
    display = {i: draw.to_uint8(t.float().cpu().numpy(), norm["mean"], norm["std"]) for i, t in tensors.items()}

    result = ExplainResult(out)
    summary: dict = {
        "run": str(run_dir), "test_images": int(len(labels)), "accuracy": pred.accuracy,
        "fingerprint": source.fingerprint(), "classes": classes, "device": str(dev),
    }

    def save(name: str, img, caption: str) -> None:
        path = draw.save_png(img, out / f"{name}.png")
        result.figures.append(Figure(name, path.name, caption))
        echo(f"  wrote {path}")

    if "gradcam" in wanted:
        idx = np.concatenate([correct_idx, wrong_idx]).astype(np.int64)  # never empty: N > 0
        with _step(echo, f"Grad-CAM of {len(idx)} images at layer {layer_name}", progress):
            x = torch.stack([tensors[int(i)] for i in idx])
            cam = grad_cam(model, x, layer_name)
            cam_true = grad_cam(model, x, layer_name, target=labels[idx]) if len(wrong_idx) else None
        shown = np.stack([display[int(i)] for i in idx])
        save("gradcam", render_gradcam(shown, labels[idx], cam, classes, cam_true),
             f"Grad-CAM at layer {cam.layer}: {len(correct_idx)} correct and {len(wrong_idx)} wrong test "
             "images; the heat shows where the evidence for the named class lies")
        summary["gradcam"] = {"layer": cam.layer, "images": idx.tolist(), "predicted": cam.predicted.tolist(),
                              "labels": labels[idx].tolist()}

    if "filters" in wanted:
        name, weights = first_layer_filters(model)
        save("filters", render_filters(name, weights),
             f"the {weights.shape[0]} filters of the first conv layer ({name}), {weights.shape[2]}×{weights.shape[3]}")
        summary["filters"] = {"layer": name, "shape": list(weights.shape)}

    if "feature-maps" in wanted:
        maps = feature_maps(model, tensors[index][None])
        cap = f"test image #{index}: true '{classes[labels[index]]}', predicted '{classes[predicted[index]]}'"
        save("feature_maps", render_feature_maps(maps, display[index], cap),
             f"the maps of every conv layer ({len(maps)}) for test image #{index}")
        summary["feature_maps"] = {"image": index, "layers": {k: list(v.shape) for k, v in maps.items()}}

    if "correlation" in wanted:
        assert pred.features is not None
        corr = class_correlation(pred.features, labels[pred.feature_index], len(classes))
        note = (f"penultimate features = the input of layer '{feature_layer}' (the last Linear, "
                f"{pred.features.shape[1]} values); up to {per_class} test images per class")
        save("correlation", render_correlation(corr, classes, "Class-correlation matrix", note),
             f"mean Pearson correlation between the penultimate features of class i and class j "
             f"(diagonal {corr.diagonal_mean:.3f}, off-diagonal {corr.off_diagonal_mean:.3f})")
        summary["correlation"] = {"feature_layer": feature_layer, "counts": corr.counts.tolist(),
                                  "diagonal_mean": corr.diagonal_mean, "off_diagonal_mean": corr.off_diagonal_mean,
                                  "matrix": [[None if np.isnan(v) else float(v) for v in row] for row in corr.matrix]}

    if "gallery" in wanted:
        counts = {p: len(idx) for p, idx in errors.items()}
        save("gallery", render_gallery(shown_pairs, counts, display, pred.probs, classes, len(errors)),
             f"misclassified test images by (true, predicted) pair: {int((~pred.correct).sum())} errors "
             f"in {len(errors)} pairs")
        summary["gallery"] = {"pairs": [{"true": classes[t], "predicted": classes[p], "count": counts[(t, p)],
                                         "shown": idx.tolist()} for (t, p), idx in shown_pairs.items()]}

    if "embedding" in wanted:
        assert pred.features is not None
        y, yhat = labels[pred.feature_index], predicted[pred.feature_index]
        summary["embedding"] = {"images": int(len(y))}
        if len(y) < 3:
            echo("  2-D maps skipped: fewer than 3 test images")
        for method, label in (("pca", "PCA"), ("tsne", "t-SNE")):
            if len(y) < 3:
                break
            with _step(echo, f"{label} of {len(y)} feature vectors", progress):
                emb = embed_2d(pred.features, method, SEED)
            save(f"embedding_{method}", render_embedding(emb, y, yhat, classes),
                 f"{label} of the penultimate features of {len(y)} test images, coloured by true class")
            if emb.explained:
                summary["embedding"]["pca_explained_variance"] = list(emb.explained)

    summary["figures"] = [f.__dict__ for f in result.figures]
    write_json(out / "explain.json", summary)
    (out / "index.html").write_text(_index_html(run_dir, summary, result.figures))
    result.summary = summary
    echo(f"  wrote {out / 'index.html'}")
    return result


def _index_html(run_dir: Path, summary: dict, figures: list[Figure]) -> str:
    e = html.escape
    items = "\n".join(
        f'<section><h2>{e(f.name)}</h2><p>{e(f.caption)}</p><a href="{e(f.file)}"><img src="{e(f.file)}" '
        f'alt="{e(f.name)}"></a></section>' for f in figures
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>explain: {e(str(run_dir))}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}} img{{max-width:100%;border:1px solid #ddd}}
section{{margin-bottom:2.5em}} code{{background:#f4f4f4}}</style></head>
<body><h1>Explain <code>{e(str(run_dir))}</code></h1>
<p>{summary['test_images']} test images, accuracy {summary['accuracy']:.4f} (test split fingerprint
<code>{e(summary['fingerprint'][:12])}</code>). Numbers behind the figures: <a href="explain.json">explain.json</a>.</p>
{items}
</body></html>
"""


__all__ = ["FIGURES", "ExplainResult", "Figure", "check_figures", "explain_run"]
