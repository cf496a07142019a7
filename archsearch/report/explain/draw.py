"""Drawing primitives for the explain figures, on Pillow alone (no plotting library needed).

Arrays in, PIL images out: colour maps, image tiles, overlays, captions, a page that stacks
labelled rows, and PNG writing.
"""

from __future__ import annotations

import colorsys
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (110, 110, 110)
GREEN = (20, 130, 40)
RED = (200, 30, 30)
PAD = 6

# anchors of matplotlib's "inferno" (sequential: heat) and "RdBu_r" (diverging: correlation)
_INFERNO = [(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66), (245, 125, 21),
            (250, 193, 39), (252, 255, 164)]
_RDBU = [(5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240), (247, 247, 247),
         (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31)]
_MAPS = {"inferno": np.array(_INFERNO, float), "rdbu": np.array(_RDBU, float)}
_TAB10 = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
          (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


@lru_cache(maxsize=8)
def font(size: int = 13) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans when installed (wide Unicode coverage), else Pillow's built-in font."""
    for name in ("DejaVuSans.ttf", "Arial.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


_ASCII = str.maketrans({"→": "->", "×": "x", "–": "-", "Σ": "sum", "○": "o", "…": "...", "·": "*"})


def safe(text: str) -> str:
    """`text` as the font can draw it: unchanged with a TrueType font, else ASCII (symbols spelt
    out, accents dropped: 'Dürer' → 'Durer') so the built-in font shows no empty boxes."""
    if isinstance(getattr(font(13), "path", None), str):  # a font file found on the system
        return text
    return unicodedata.normalize("NFKD", text.translate(_ASCII)).encode("ascii", "ignore").decode()


def text_size(text: str, size: int = 13) -> tuple[int, int]:
    left, top, right, bottom = font(size).getbbox(safe(text) or " ")
    return int(right - left), int(bottom + 2)


def put_text(d: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int = 13,
             fill: tuple[int, int, int] = BLACK) -> None:
    d.text(xy, safe(text), fill=fill, font=font(size))


def colormap(values: np.ndarray, name: str = "inferno") -> np.ndarray:
    """uint8 RGB [..., 3] for values in [0, 1] (clipped; NaN → light grey)."""
    anchors = _MAPS[name]
    v = np.asarray(values, float)
    nan = np.isnan(v)
    pos = np.clip(np.nan_to_num(v), 0, 1) * (len(anchors) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(anchors) - 2)
    frac = (pos - lo)[..., None]
    rgb = anchors[lo] * (1 - frac) + anchors[lo + 1] * frac
    rgb[nan] = 220
    return np.rint(rgb).astype(np.uint8)


def class_colors(n: int) -> list[tuple[int, int, int]]:
    """n distinct colours: tab10, then evenly spaced hues."""
    if n <= len(_TAB10):
        return _TAB10[:n]
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb(i / n, 0.75 if i % 2 else 0.95, 0.85 if i % 3 else 0.65)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def to_uint8(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised [C, H, W] image back to displayable uint8 [H, W, 3] (grey copied to RGB)."""
    x = np.asarray(image, float) * np.asarray(std, float)[:, None, None] + np.asarray(mean, float)[:, None, None]
    x = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    if x.shape[0] == 3:
        return x.transpose(1, 2, 0)
    return np.repeat(x[:1].transpose(1, 2, 0), 3, axis=2)


def scaled(values: np.ndarray) -> np.ndarray:
    """Min-max scaled to [0, 1] (a constant array → 0.5)."""
    v = np.asarray(values, float)
    lo, hi = float(v.min()), float(v.max())
    return np.full_like(v, 0.5) if hi - lo < 1e-12 else (v - lo) / (hi - lo)


def grey(values: np.ndarray) -> np.ndarray:
    """uint8 RGB [H, W, 3] of a 2-D array, min-max scaled."""
    g = np.rint(scaled(values) * 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.7) -> np.ndarray:
    """A heat map in [0, 1] blended over a uint8 [H, W, 3] image (same H, W); the colour's weight
    grows with the heat (0.1 … alpha), so the image stays visible where the heat is low."""
    h = np.clip(np.asarray(heat, float), 0, 1)[..., None]
    a = 0.1 + (alpha - 0.1) * h
    return np.rint(image.astype(float) * (1 - a) + colormap(h[..., 0]).astype(float) * a).astype(np.uint8)


def tile(rgb: np.ndarray, size: int) -> Image.Image:
    """A uint8 [H, W, 3] array as a square-ish PIL tile whose longer side is `size` pixels
    (small images are enlarged without smoothing, so each input pixel stays visible)."""
    img = Image.fromarray(np.ascontiguousarray(rgb))
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(new, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR)


def captioned(img: Image.Image, lines: Sequence[str], color: tuple[int, int, int] = BLACK,
              size: int = 11) -> Image.Image:
    """`img` with caption lines below it (centred)."""
    lh = text_size("Ag", size)[1]
    width = max([img.width] + [text_size(s, size)[0] + 4 for s in lines])
    out = Image.new("RGB", (width, img.height + lh * len(lines) + 2), WHITE)
    out.paste(img, ((width - img.width) // 2, 0))
    d = ImageDraw.Draw(out)
    for i, s in enumerate(lines):
        put_text(d, ((width - text_size(s, size)[0]) // 2, img.height + 1 + i * lh), s, size, color)
    return out


def hstack(images: Sequence[Image.Image], gap: int = PAD) -> Image.Image:
    if not images:
        return Image.new("RGB", (1, 1), WHITE)
    width = sum(i.width for i in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (width, max(i.height for i in images)), WHITE)
    x = 0
    for i in images:
        out.paste(i, (x, 0))
        x += i.width + gap
    return out


def vstack(images: Sequence[Image.Image], gap: int = PAD) -> Image.Image:
    if not images:
        return Image.new("RGB", (1, 1), WHITE)
    height = sum(i.height for i in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (max(i.width for i in images), height), WHITE)
    y = 0
    for i in images:
        out.paste(i, (0, y))
        y += i.height + gap
    return out


def wrap(images: Sequence[Image.Image], per_row: int, gap: int = PAD) -> Image.Image:
    """Images in rows of `per_row`."""
    rows = [hstack(images[i:i + per_row], gap) for i in range(0, len(images), per_row)]
    return vstack(rows, gap)


def labelled(body: Image.Image, label: str, size: int = 13, color: tuple[int, int, int] = BLACK) -> Image.Image:
    """Label line(s) ('\n' separates them) above `body`."""
    lines = label.split("\n")
    lh = text_size("Ag", size)[1]
    lw = max(text_size(s, size)[0] for s in lines)
    out = Image.new("RGB", (max(body.width, lw + 2), body.height + lh * len(lines) + 2), WHITE)
    d = ImageDraw.Draw(out)
    for i, s in enumerate(lines):
        put_text(d, (0, i * lh), s, size, color)
    out.paste(body, (0, lh * len(lines) + 2))
    return out


def page(title: str, body: Image.Image, note: str = "") -> Image.Image:
    """A figure: a title line, an optional grey note line, the body, white margins."""
    if note:
        body = labelled(body, note, 12, GREY)
    return _margin(labelled(body, title, 16))


def _margin(img: Image.Image, m: int = 12) -> Image.Image:
    out = Image.new("RGB", (img.width + 2 * m, img.height + 2 * m), WHITE)
    out.paste(img, (m, m))
    return out


def colorbar(vmin: float, vmax: float, name: str, height: int, width: int = 14, size: int = 11) -> Image.Image:
    """A vertical colour bar with its end and middle values."""
    ramp = colormap(np.linspace(1, 0, max(2, height))[:, None].repeat(width, 1), name)
    labels = [f"{vmax:.2f}", f"{(vmin + vmax) / 2:.2f}", f"{vmin:.2f}"]
    lw = max(text_size(s, size)[0] for s in labels)
    out = Image.new("RGB", (width + 4 + lw, height + text_size("0", size)[1]), WHITE)
    out.paste(Image.fromarray(ramp), (0, 0))
    d = ImageDraw.Draw(out)
    for s, y in zip(labels, (0, height // 2 - 6, height - 12)):
        put_text(d, (width + 4, max(0, y)), s, size)
    return out


def save_png(img: Image.Image, path: Path) -> Path:
    """Write a PNG atomically (temporary file + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    img.save(tmp, format="PNG", optimize=True)
    tmp.replace(path)
    return path
