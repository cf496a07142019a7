"""Images → base64 `data:` URIs, so the report is one file that works offline."""

from __future__ import annotations

import base64
import io

import numpy as np


def data_uri(png: bytes) -> str:
    """A PNG file's bytes as a data URI for <img src=...>."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png_bytes(image: np.ndarray, min_size: int = 64) -> bytes:
    """One uint8 [C, H, W] image (C 1 or 3) as PNG bytes, enlarged by whole factors (nearest
    neighbour) to at least `min_size` pixels a side, so 8×8 or 28×28 images stay sharp."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must be uint8 [C, H, W] with C 1 or 3, but got {image.dtype} {list(image.shape)}.")
    pil = Image.fromarray(image[0] if image.shape[0] == 1 else np.ascontiguousarray(image.transpose(1, 2, 0)))
    factor = max(1, -(-min_size // min(pil.size)))
    if factor > 1:
        pil = pil.resize((pil.width * factor, pil.height * factor), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def image_uri(image: np.ndarray, min_size: int = 64) -> str:
    """png_bytes as a data URI."""
    return data_uri(png_bytes(image, min_size))
