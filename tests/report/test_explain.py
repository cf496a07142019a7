"""`archsearch explain` and `evaluate --ensemble` on tiny models trained here, on tasks whose answer is known."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from archsearch.build import build_model
from archsearch.data.testsplit import load_test
from archsearch.errors import ArchsearchError
from archsearch.evaluate import load_run
from archsearch.evaluate.ensemble import EnsembleError, evaluate_ensemble
from archsearch.report.explain import (
    ExplainError,
    class_correlation,
    classifier,
    conv_layers,
    default_layer,
    embed_2d,
    explain_run,
    feature_maps,
    find_layer,
    first_layer_filters,
    grad_cam,
    images_at,
    misclassified,
    peak_position,
    predict,
    stratified_sample,
)
from archsearch.report.explain.layers import capture_input
from archsearch.spec import parse_spec
from archsearch.train.run import train_run
from tests.conftest import ROOT

SIZE, PATCH = 24, 5
CORNERS = {"top_left": (0, 0), "top_right": (0, 1), "bottom_left": (1, 0), "bottom_right": (1, 1)}
TRAIN = {"precision": "fp32", "channels_last": False, "batch_size": 32}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archsearch", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=180)


def _test_split(run: Path):
    spec, model, metrics = load_run(run)
    norm = metrics["normalization"]
    source, classes = load_test(spec.data, spec.model.input_shape, mean=norm["mean"], std=norm["std"])
    return model, source, classes


@pytest.fixture(scope="module")
def corner_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes of 24×24 noise images; the class is the corner holding a bright 5×5 patch
    (0–2 px from the corner). A small conv net with global average pooling, trained a few seconds."""
    root = tmp_path_factory.mktemp("corners")
    rng = np.random.default_rng(0)
    for name, (row, col) in CORNERS.items():
        (root / "images" / name).mkdir(parents=True)
        for i in range(60):
            img = rng.integers(0, 90, (SIZE, SIZE)).astype(np.uint8)
            r0 = rng.integers(0, 3) if row == 0 else SIZE - PATCH - rng.integers(0, 3)
            c0 = rng.integers(0, 3) if col == 0 else SIZE - PATCH - rng.integers(0, 3)
            img[r0:r0 + PATCH, c0:c0 + PATCH] = 255
            Image.fromarray(img).save(root / "images" / name / f"{i:02d}.png")
    conv = lambda n: {"type": "conv2d", "out": n}  # noqa: E731
    spec = parse_spec({
        "model": {"input": [1, SIZE, SIZE], "num_classes": 4, "layers": [
            conv(8), {"type": "batchnorm"}, {"type": "activation"},
            conv(16), {"type": "batchnorm"}, {"type": "activation"}, {"type": "maxpool"},
            conv(16), {"type": "activation"},  # an in-place ReLU right after the Grad-CAM layer
            {"type": "global_avg_pool"}, {"type": "linear"}]},
        "data": {"dataset": "image_folder", "path": str(root / "images"), "workers": 0, "val_fraction": 0.2,
                 "test_fraction": 0.25},
        "train": {**TRAIN, "epochs": 20, "lr": 3e-3, "seed": 0},
    })
    train_run(spec, root / "run", device="cpu", progress=False)
    return root / "run"


def _digits_spec(seed: int, layers: list | None = None, epochs: int = 3):
    layers = layers or [
        {"type": "conv2d", "out": 16}, {"type": "batchnorm"}, {"type": "activation"}, {"type": "maxpool"},
        {"type": "conv2d", "out": 32}, {"type": "activation"},
        {"type": "flatten"}, {"type": "linear", "out": 32}, {"type": "activation"}, {"type": "linear"}]
    return parse_spec({
        "model": {"input": [1, 8, 8], "num_classes": 10, "layers": layers},
        "data": {"dataset": "digits", "val_fraction": 0.15, "test_fraction": 0.2},
        "train": {**TRAIN, "batch_size": 64, "epochs": epochs, "lr": 3e-3, "seed": seed},
    })


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small digits CNNs, seeds 0 and 1."""
    root = tmp_path_factory.mktemp("digits")
    for seed in (0, 1):
        train_run(_digits_spec(seed), root / f"seed{seed}", device="cpu", progress=False)
    return [root / "seed0", root / "seed1"]


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mlp") / "run"
    spec = _digits_spec(0, [{"type": "flatten"}, {"type": "linear"}], epochs=1)
    train_run(spec, out, device="cpu", progress=False)
    return out


# --- Grad-CAM --------------------------------------------------------------------------------------

def test_gradcam_peak_is_in_the_corner_that_decides_the_class(corner_run: Path) -> None:
    model, source, classes = _test_split(corner_run)
    x = images_at(source, range(source.num_samples))
    labels = source.labels.numpy()
    cam = grad_cam(model, x)
    assert cam.layer == "7" and cam.heat.shape == (len(labels), SIZE, SIZE) and cam.raw.shape[1:] == (12, 12)
    assert cam.heat.min() >= 0 and np.allclose(cam.heat.reshape(len(labels), -1).max(1), 1.0)
    correct = cam.predicted == labels
    assert correct.mean() >= 0.75, f"the corner task did not train: accuracy {correct.mean():.2f}"
    peak = peak_position(cam.heat)
    quadrant = list(zip(peak[:, 0] >= SIZE // 2, peak[:, 1] >= SIZE // 2))
    expected = [CORNERS[classes[y]] for y in labels]
    hits = np.array([tuple(map(int, q)) == e for q, e in zip(quadrant, expected)])
    assert hits[correct].mean() >= 0.9, f"CAM peak in the right corner for {hits[correct].mean():.0%} only"


def test_gradcam_equals_a_reference_without_inplace_relus(corner_run: Path) -> None:
    """The hook's copy keeps the in-place ReLU after layer 7 off the captured activations: the maps
    equal Grad-CAM computed by hand on a copy of the model whose ReLUs are not in place."""
    model, source, _ = _test_split(corner_run)
    x = images_at(source, range(8))
    target = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    cam = grad_cam(model, x, target=target)

    ref = copy.deepcopy(model).eval()
    for m in ref.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    acts = []
    handle = ref[7].register_forward_hook(lambda _m, _a, out: acts.append(out))
    logits = ref(x)
    handle.remove()
    grad, = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), acts[0])
    expected = torch.relu((grad.mean((2, 3), keepdim=True) * acts[0]).sum(1)).detach().numpy()
    np.testing.assert_allclose(cam.raw, expected, rtol=1e-4, atol=1e-6)
    assert (cam.target == target.numpy()).all()
    assert all(p.grad is None for p in model.parameters()), "Grad-CAM left gradients on the model"
    first = grad_cam(model, x, layer="0")  # an earlier layer: its own resolution
    assert first.layer == "0" and first.raw.shape == (8, SIZE, SIZE)


def test_layer_names_and_their_errors(corner_run: Path) -> None:
    model, _, _ = _test_split(corner_run)
    assert list(conv_layers(model)) == ["0", "3", "7"] and default_layer(model) == "7"
    with pytest.raises(ExplainError, match=r"--layer 'conv9': no module of that name; conv layers: 0, 3, 7"):
        find_layer(model, "conv9")
    x = torch.zeros(2, 1, SIZE, SIZE)
    with pytest.raises(ExplainError, match=r"--layer '10' outputs \[2, 4\]; Grad-CAM needs"):
        grad_cam(model, x, layer="10")


def test_resnet_gradcam_and_frozen_backbone_features() -> None:
    """torchvision ResNets: default layer, CBAM's gate convs left out, Grad-CAM through frozen
    stages (a fixed feature extractor), penultimate = the 512 inputs of fc."""
    torch.manual_seed(0)
    spec = parse_spec({"model": {"input": [1, 8, 8], "num_classes": 10, "backbone": {
        "name": "resnet18", "small_input": True, "attention": "cbam",
        "freeze": ["stem", "layer1", "layer2", "layer3", "layer4"]}}})
    model = build_model(spec).eval()
    convs = conv_layers(model)
    assert len(convs) == 20 and not any("spatial" in n or "mlp" in n for n in convs)
    assert default_layer(model) == "layer4.1.conv2"
    x = torch.randn(4, 1, 8, 8)
    cam = grad_cam(model, x)
    assert cam.heat.shape == (4, 8, 8) and np.isfinite(cam.heat).all() and cam.probs.shape == (4, 10)
    assert grad_cam(model, x, layer="layer4").raw.shape == (4, 1, 1)  # any 4-D module output works
    name, fc = classifier(model)
    with capture_input(fc) as seen:
        model(x)
    assert name == "fc" and seen[0].shape == (4, 512)


# --- filters, feature maps, correlation, gallery, 2-D maps ------------------------------------------

def test_filters_and_feature_maps_are_the_conv_outputs(corner_run: Path) -> None:
    model, source, _ = _test_split(corner_run)
    name, weights = first_layer_filters(model)
    assert name == "0" and np.array_equal(weights, model[0].weight.detach().numpy())
    x = images_at(source, [5])
    maps = feature_maps(model, x)
    assert list(maps) == ["0", "3", "7"]
    assert [m.shape for m in maps.values()] == [(8, SIZE, SIZE), (16, SIZE, SIZE), (16, 12, 12)]
    with torch.no_grad():
        np.testing.assert_allclose(maps["0"], model[0](x)[0].numpy(), rtol=1e-5, atol=1e-6)
        before_relu = model[:8](x)[0].numpy()
    np.testing.assert_allclose(maps["7"], before_relu, rtol=1e-5, atol=1e-5)
    assert (maps["7"] < 0).any(), "layer 7's maps were taken after the in-place ReLU"


def test_class_correlation_matches_pairwise_pearson() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 5)
    feats = rng.normal(size=(15, 7)) + labels[:, None] * rng.normal(size=7)
    corr = class_correlation(feats, labels, 3)
    r = np.corrcoef(feats)
    for i in range(3):
        for j in range(3):
            block = r[np.ix_(labels == i, labels == j)]
            expected = block[~np.eye(5, dtype=bool)].mean() if i == j else block.mean()
            assert corr.matrix[i, j] == pytest.approx(expected, abs=1e-12)
    assert corr.counts.tolist() == [5, 5, 5]
    feats[0] = 3.0  # a constant vector has no correlation: left out
    assert class_correlation(feats, labels, 3).counts.tolist() == [4, 5, 5]


def test_digits_class_correlation_diagonal_beats_off_diagonal(digits_runs: list[Path]) -> None:
    model, source, classes = _test_split(digits_runs[0])
    sample = stratified_sample(source.labels.numpy(), 20)
    pred = predict(model, source, sample)
    assert pred.feature_layer == "9" and pred.features.shape == (200, 32) and pred.accuracy > 0.8
    corr = class_correlation(pred.features, pred.labels[pred.feature_index], len(classes))
    assert corr.matrix.shape == (10, 10) and np.allclose(corr.matrix, corr.matrix.T)
    assert corr.diagonal_mean > corr.off_diagonal_mean + 0.2, (corr.diagonal_mean, corr.off_diagonal_mean)


def test_gallery_pairs_and_2d_maps() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    probs = np.array([[.9, .1, 0], [.2, .7, .1], [.1, .2, .7], [.3, .6, .1], [.8, .1, .1],
                      [.05, .9, .05], [.1, .6, .3], [.1, .1, .8]])
    pairs = misclassified(labels, probs)
    assert list(pairs) == [(2, 1), (0, 1), (0, 2), (1, 0)]  # most errors first, then by class
    assert pairs[(2, 1)].tolist() == [5, 6]  # most confident error first
    assert misclassified(labels, probs, per_pair=1)[(2, 1)].tolist() == [5]

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    feats = rng.normal(size=(40, 10)) + y[:, None] * 6.0
    pca = embed_2d(feats, "pca")
    assert pca.coords.shape == (40, 2) and pca.explained[0] > 0.5
    assert abs(pca.coords[y == 0, 0].mean() - pca.coords[y == 1, 0].mean()) > 5  # PC1 separates the clusters
    tsne = embed_2d(feats, "tsne")
    assert tsne.coords.shape == (40, 2) and np.isfinite(tsne.coords).all()


# --- the command -----------------------------------------------------------------------------------

def test_cli_explain_writes_figures_and_their_numbers(corner_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "explain"
    r = _cli("explain", str(corner_run), "--out", str(out), "--images", "4", "--per-class", "8", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    pngs = ["gradcam", "filters", "feature_maps", "correlation", "gallery", "embedding_pca", "embedding_tsne"]
    assert all(f"wrote {out / (p + '.png')}" in r.stdout for p in pngs)
    summary = json.loads((out / "explain.json").read_text())
    model, source, classes = _test_split(corner_run)
    assert summary["accuracy"] == pytest.approx(predict(model, source).accuracy)
    assert summary["gradcam"]["layer"] == "7" and len(summary["gradcam"]["images"]) <= 8
    corr = np.array(summary["correlation"]["matrix"])
    assert corr.shape == (4, 4) and summary["correlation"]["counts"] == [8, 8, 8, 8]
    assert np.diag(corr).mean() > corr[~np.eye(4, dtype=bool)].mean()
    html = (out / "index.html").read_text()
    for p in pngs:
        img = np.asarray(Image.open(out / f"{p}.png").convert("RGB"))
        assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 10, p
        assert f'src="{p}.png"' in html
    heat = np.asarray(Image.open(out / "gradcam.png").convert("RGB")).astype(int)
    assert ((heat[..., 0] - heat[..., 2]) > 80).sum() > 500  # the warm colours of the heat maps are there


def test_cli_unknown_layer_exit_2_lists_conv_layers(corner_run: Path, tmp_path: Path) -> None:
    r = _cli("explain", str(corner_run), "--out", str(tmp_path / "x"), "--layer", "conv9")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "error: --layer 'conv9': no module of that name; conv layers: 0, 3, 7"
    assert not (tmp_path / "x").exists(), "nothing is written before the options are checked"


def test_cli_model_without_conv_exit_2(mlp_run: Path, tmp_path: Path) -> None:
    r = _cli("explain", str(mlp_run), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: this model has no Conv2d layer (its layers: Flatten, Linear)")
    # the figures that need no conv layer still work for it
    res = explain_run(mlp_run, tmp_path / "y", per_class=5, figures=["correlation"], echo=lambda _s: None)
    assert [f.name for f in res.figures] == ["correlation"] and res.summary["correlation"]["counts"] == [5] * 10


def test_explain_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(ArchsearchError, match="is not a finished run directory"):
        explain_run(tmp_path, echo=lambda _s: None)
    with pytest.raises(ExplainError, match="--only: unknown figure 'heatmap'; expected one of: gradcam"):
        explain_run(tmp_path, figures=["heatmap"], echo=lambda _s: None)


# --- ensembles -------------------------------------------------------------------------------------

def test_ensemble_averages_member_probabilities(digits_runs: list[Path], corner_run: Path) -> None:
    e = evaluate_ensemble(digits_runs, device="cpu")
    assert len(e.members) == 2 and e.probs.shape == (360, 10)
    for m in e.members:  # each member's probabilities, recomputed independently
        model, source, _ = _test_split(m.run)
        with torch.no_grad():
            own = torch.cat([model(x).softmax(1) for x, _ in source.batches(100)]).numpy()
        np.testing.assert_allclose(m.probs, own, rtol=1e-5, atol=1e-6)
        assert m.accuracy == pytest.approx((own.argmax(1) == source.labels.numpy()).mean())
    np.testing.assert_allclose(e.probs, (e.members[0].probs + e.members[1].probs) / 2, rtol=1e-6, atol=1e-7)
    assert e.accuracy == pytest.approx((e.probs.argmax(1) == e.labels).mean())
    report = e.report()
    assert [m["accuracy"] for m in report["members"]] == [m.accuracy for m in e.members]
    assert [m["gain"] for m in report["members"]] == pytest.approx([e.accuracy - m.accuracy for m in e.members])

    with pytest.raises(EnsembleError, match="predicts other classes"):
        evaluate_ensemble([digits_runs[0], corner_run], device="cpu")
    with pytest.raises(EnsembleError, match="at least two runs"):
        evaluate_ensemble(digits_runs[:1])
    with pytest.raises(EnsembleError, match="listed twice"):
        evaluate_ensemble([digits_runs[0], digits_runs[0]])

    from typer.testing import CliRunner

    from archsearch.cli import app

    r = CliRunner().invoke(app, ["evaluate", str(digits_runs[0]), "--ensemble", str(digits_runs[1]),
                                 "--device", "cpu"], env={"COLUMNS": "240"})
    assert r.exit_code == 0, r.output
    for m in e.members:
        assert f"{m.accuracy:.4f}" in r.output
    assert f"ensemble accuracy {e.accuracy:.4f}" in r.output
    written = json.loads((digits_runs[0] / "ensemble_test.json").read_text())
    assert [m["run"] for m in written["members"]] == [str(p) for p in digits_runs]
