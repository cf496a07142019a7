"""What the conv layers hold: the first layer's filters, and every conv layer's maps for one image."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from archsearch.report.explain import draw
from archsearch.report.explain.layers import capture_outputs, conv_layers, first_conv


def first_layer_filters(model: nn.Module) -> tuple[str, np.ndarray]:
    """The first conv layer's name and weights, float32 [out, in/groups, kh, kw].

    A depthwise-separable first layer gives its depthwise filters (the ones that see the image).
    """
    name, conv = first_conv(model)
    return name, conv.weight.detach().float().cpu().numpy()


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Every conv layer's output for one image, by layer name in registration order.

    Args:
        model: any built model with conv layers (eval mode is set and restored).
        x: one normalised image [1, C, H, W] (or [C, H, W]) on the model's device.

    Returns:
        name → float32 [channels, h, w] as the conv computed it (before any activation).
    """
    if x.dim() == 3:
        x = x[None]
    if x.shape[0] != 1:
        raise ValueError(f"feature_maps takes one image, but got {tuple(x.shape)=}.")
    convs = conv_layers(model)
    was_training = model.training
    model.eval()
    try:
        with capture_outputs(convs) as seen:
            model(x)
    finally:
        model.train(was_training)
    return {name: seen[name][0].float().cpu().numpy() for name in convs if name in seen}


def _filter_rgb(w: np.ndarray) -> np.ndarray:
    """One filter [in, kh, kw] as uint8 RGB: 3 inputs as colour, else the mean over inputs in grey.
    Scaled symmetrically around 0 so mid-grey is a zero weight."""
    v = w if w.shape[0] == 3 else w.mean(0, keepdims=True)
    m = float(np.abs(v).max()) or 1.0
    v = np.rint((v / m * 0.5 + 0.5) * 255).astype(np.uint8)
    return v.transpose(1, 2, 0) if v.shape[0] == 3 else np.repeat(v.transpose(1, 2, 0), 3, axis=2)


def render_filters(name: str, weights: np.ndarray, limit: int = 64, tile_px: int = 40) -> Image.Image:
    """The first `limit` filters of a conv layer as a grid of small images."""
    shown = weights[:limit]
    tiles = [draw.captioned(draw.tile(_filter_rgb(w), tile_px), [str(i)], draw.GREY, 10) for i, w in enumerate(shown)]
    kind = "RGB" if weights.shape[1] == 3 else ("grey" if weights.shape[1] == 1 else f"mean of {weights.shape[1]} inputs")
    return draw.page(
        f"First-layer filters: {name} ({weights.shape[0]} filters, {weights.shape[2]}×{weights.shape[3]}, {kind})",
        draw.wrap(tiles, 16, gap=4),
        f"mid-grey = 0, light = positive, dark = negative weight; {len(shown)} of {weights.shape[0]} shown",
    )


def render_feature_maps(maps: dict[str, np.ndarray], image: np.ndarray, caption: str,
                        channels: int = 16, tile_px: int = 56) -> Image.Image:
    """One row per conv layer: its first `channels` maps, each min-max scaled; the image on top."""
    rows = [draw.labelled(draw.tile(image, tile_px * 2), caption, 12)]
    for name, m in maps.items():
        tiles = [draw.captioned(draw.tile(draw.grey(m[c]), tile_px), [str(c)], draw.GREY, 10)
                 for c in range(min(channels, m.shape[0]))]
        rows.append(draw.labelled(draw.hstack(tiles, 3), f"layer {name}: {m.shape[0]} maps of {m.shape[1]}×{m.shape[2]}", 12))
    return draw.page("Feature maps of every conv layer", draw.vstack(rows, 8),
                     f"first {channels} channels of each layer, before the activation; each map scaled to its own range")
