"""Data tests run offline, with a private cache and no ARCHSEARCH_DATA from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("ARCHSEARCH_CACHE", str(cache))
    monkeypatch.setenv("ARCHSEARCH_OFFLINE", "1")
    monkeypatch.delenv("ARCHSEARCH_DATA", raising=False)
    return cache


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """3 classes of 16×16 RGB PNGs with unequal counts 12 / 8 / 5."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "shapes"
    rng = np.random.default_rng(0)
    for name, count, base in (("circle", 12, 40), ("square", 8, 120), ("triangle", 5, 200)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            arr = np.clip(rng.normal(base, 20, size=(16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"img{i:02d}.png")
    return root
