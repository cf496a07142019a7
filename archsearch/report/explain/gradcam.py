"""Grad-CAM (Selvaraju et al., 2017): where in the image a conv layer's evidence for a class lies.

For a target layer with activations A (C maps of h×w) and class score y_c, each map's weight is
the spatial mean of ∂y_c/∂A_k; the CAM is ReLU(Σ_k weight_k · A_k), upsampled to the input.

The activations are captured with a forward hook that hands the next layer a *copy* of the
layer's output: the builder's in-place ReLUs then overwrite the copy, never the captured tensor,
and the gradient is taken with torch.autograd.grad on the captured tensor itself (no backward
hooks, no .grad left on the model's parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from archsearch.report.explain import draw
from archsearch.report.explain.layers import ExplainError, find_layer

CHUNK = 64  # images per forward/backward pass


@dataclass(frozen=True)
class GradCam:
    """Grad-CAM maps of a batch of images.

    Attributes:
        layer: the target module's name.
        heat: float32 [N, H, W] at input resolution, each map scaled to [0, 1] (all zero when the
            layer holds no positive evidence for the class).
        raw: float32 [N, h, w], ReLU(Σ weight·A) at the layer's own resolution, unscaled.
        target: int64 [N], the class each map explains.
        probs: float32 [N, K], the model's softmax output.
    """

    layer: str
    heat: np.ndarray
    raw: np.ndarray
    target: np.ndarray
    probs: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(1)


def _one_chunk(model: nn.Module, layer: nn.Module, name: str, x: torch.Tensor,
               target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _args: tuple, out: torch.Tensor) -> torch.Tensor:
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ExplainError(f"--layer {name!r} outputs {shape}; Grad-CAM needs a [N, C, H, W] feature map")
        captured.append(out)
        return out.clone()  # downstream in-place ops modify the copy, `out` stays as computed

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            # requires_grad on the input: the graph reaches the layer even when every parameter
            # before it is frozen (a pretrained backbone used as a fixed feature extractor)
            logits = model(x.detach().clone().requires_grad_(True)).float()
            if not captured:
                raise ExplainError(f"--layer {name!r} is not called in the model's forward pass")
            act = captured[-1]  # a module called twice (a shared ReLU): its last call
            tgt = logits.argmax(1) if target is None else target.to(logits.device)
            score = logits.gather(1, tgt[:, None]).sum()  # images are independent: one backward for all
            (grad,) = torch.autograd.grad(score, act)
    finally:
        handle.remove()
    weights = grad.float().mean((2, 3), keepdim=True)
    cam = F.relu((weights * act.detach().float()).sum(1))
    return cam, tgt, logits.detach().softmax(1)


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str | None = None,
             target: torch.Tensor | np.ndarray | None = None) -> GradCam:
    """Grad-CAM maps of `x` for the predicted class (or `target`).

    Args:
        model: any built model; used in eval mode (restored afterwards).
        x: normalised images [N, C, H, W] on the model's device.
        layer: target module name (`--layer`); default: the last conv layer on the main path.
        target: classes to explain, int [N]; default: each image's predicted class.

    Returns:
        The maps, the classes they explain and the model's probabilities.

    Raises:
        ExplainError: no conv layer, unknown layer name, or a layer without a spatial output.
    """
    name, module = find_layer(model, layer)
    if target is not None:
        target = torch.as_tensor(np.asarray(target), dtype=torch.int64)
        if target.shape != (x.shape[0],):
            raise ValueError(f"target must hold one class per image, but got {tuple(target.shape)=}.")
    was_training = model.training
    model.eval()
    cams, targets, probs = [], [], []
    try:
        for i in range(0, x.shape[0], CHUNK):
            t = None if target is None else target[i:i + CHUNK]
            cam, tgt, p = _one_chunk(model, module, name, x[i:i + CHUNK], t)
            cams.append(cam)
            targets.append(tgt)
            probs.append(p)
    finally:
        model.train(was_training)
    if not cams:  # no image
        h, w = x.shape[-2:]
        return GradCam(name, np.zeros((0, h, w), np.float32), np.zeros((0, 1, 1), np.float32),
                       np.zeros(0, np.int64), np.zeros((0, 0), np.float32))
    raw = torch.cat(cams)
    heat = F.interpolate(raw[:, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    peak = heat.flatten(1).amax(1)[:, None, None]
    heat = torch.where(peak > 0, heat / peak.clamp_min(1e-12), torch.zeros_like(heat))
    return GradCam(
        layer=name,
        heat=heat.cpu().numpy().astype(np.float32),
        raw=raw.cpu().numpy().astype(np.float32),
        target=torch.cat(targets).cpu().numpy(),
        probs=torch.cat(probs).cpu().numpy().astype(np.float32),
    )


def peak_position(heat: np.ndarray) -> np.ndarray:
    """(row, col) of each map's maximum, int [N, 2]."""
    n, _, w = heat.shape
    flat = heat.reshape(n, -1).argmax(1)
    return np.stack([flat // w, flat % w], axis=1)


def render_gradcam(images: np.ndarray, labels: np.ndarray, cam: GradCam, classes: list[str],
                   true_cam: GradCam | None = None, tile_px: int = 96, per_row: int = 2) -> Image.Image:
    """Correct predictions (left) beside wrong ones (right), each image with its Grad-CAM overlay.

    Args:
        images: uint8 [N, H, W, 3] display images, in the order of `cam`'s maps.
        labels: int [N] true classes.
        cam: maps for the predicted class.
        classes: class names.
        true_cam: maps for the true class; drawn as a third tile for wrong predictions.
        tile_px: size of one tile.
        per_row: images per row in each panel.
    """
    predicted = cam.predicted
    panels = []
    for title, want_correct in (("correct", True), ("wrong", False)):
        items = []
        for i in np.flatnonzero((predicted == labels) == want_correct):
            tiles = [draw.captioned(draw.tile(images[i], tile_px), ["image"]),
                     draw.captioned(draw.tile(draw.overlay(images[i], cam.heat[i]), tile_px),
                                    [f"CAM '{classes[predicted[i]]}'"])]
            if not want_correct and true_cam is not None:
                tiles.append(draw.captioned(draw.tile(draw.overlay(images[i], true_cam.heat[i]), tile_px),
                                            [f"CAM '{classes[labels[i]]}'"]))
            p = cam.probs[i, predicted[i]]
            caption = (f"'{classes[labels[i]]}'  p={p:.2f}" if want_correct
                       else f"true '{classes[labels[i]]}' → '{classes[predicted[i]]}'  p={p:.2f}")
            items.append(draw.captioned(draw.hstack(tiles, 2), [caption],
                                        draw.GREEN if want_correct else draw.RED))
        body = draw.wrap(items, per_row, gap=10) if items else draw.captioned(
            Image.new("RGB", (tile_px, 1), draw.WHITE), ["none among these images"], draw.GREY)
        panels.append(draw.labelled(body, f"{title} ({len(items)})", 14,
                                    draw.GREEN if want_correct else draw.RED))
    return draw.page(f"Grad-CAM at layer {cam.layer}",
                     draw.hstack(panels, 30),
                     "heat = where the layer's evidence for the named class lies (ReLU(Σ mean-gradient × activation))")
