"""Write a small ImageFolder-style directory (one sub-folder per class, RGB PNGs) with imbalanced
classes, to try S4's image-folder pipeline where the artworks data set is not at hand.

Each class ("painter") has its own palette and brush-stroke direction, plus noise, so the classes
are learnable but not trivially; counts fall off linearly from --max to --min images per class.

    python examples/make_image_folder.py data/painters --classes 5 --max 60 --min 20 --size 64
    archsearch train examples/s4_resnet50_finetune.yaml --set data.path=data/painters \\
        --set model.num_classes=5 --set model.backbone.pretrained=none --set data.resize=64 \\
        --set 'model.input=[3,64,64]' --epochs 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def make(root: Path, classes: int = 5, most: int = 60, least: int = 20, size: int = 64, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    counts = {}
    yy, xx = np.mgrid[0:size, 0:size] / size
    for c in range(classes):
        name = f"painter_{c:02d}"
        (root / name).mkdir(parents=True, exist_ok=True)
        palette = rng.uniform(40, 215, size=(2, 3))
        angle = np.pi * c / classes
        n = int(round(most - (most - least) * c / max(1, classes - 1)))
        for i in range(n):
            freq = rng.uniform(4, 9)
            phase = rng.uniform(0, 2 * np.pi)
            strokes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
            img = palette[0] * strokes[..., None] + palette[1] * (1 - strokes[..., None])
            img += rng.normal(0, 25, size=img.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / name / f"{i:04d}.png")
        counts[name] = n
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--max", type=int, default=60, help="images in the largest class")
    ap.add_argument("--min", type=int, default=20, help="images in the smallest class")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    counts = make(args.out, args.classes, args.max, args.min, args.size, args.seed)
    print(f"{sum(counts.values())} images in {len(counts)} classes under {args.out}: {counts}")


if __name__ == "__main__":
    main()
