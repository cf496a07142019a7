"""Fashion-MNIST for the baselines: a torchvision root made from the Debian package's IDX files."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

SYSTEM_FMNIST = Path(os.environ.get("ARCHSEARCH_DATA", "/usr/share/datasets/fashion-mnist"))


def torchvision_root(tmp: Path) -> Path:
    """A torchvision FashionMNIST root under `tmp` (no download): the IDX files, decompressed."""
    raw = tmp / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in SYSTEM_FMNIST.glob("*.gz"):
        with gzip.open(gz) as src, open(raw / gz.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return tmp
