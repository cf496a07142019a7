"""Image folders (one sub-folder a class), streamed from disk through a torch DataLoader.

A folder with `train/` and `test/` sub-folders uses them; otherwise a stratified test part
(data.test_fraction, fixed seed) is carved from all images. Images are opened with PIL,
converted to L or RGB, resized to (H, W) and handed on as uint8; the float/augment/normalise
path is the same as for in-memory datasets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from archsearch.data.base import BatchSource
from archsearch.data.pipeline import BatchPipeline
from archsearch.data.splits import carve_test
from archsearch.errors import DataError

EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


@dataclass
class FilePool:
    """Image files of one split with their labels.

    Attributes:
        root: the dataset folder (data.path); fingerprints use paths relative to it.
        paths: image files.
        labels: int64 [N].
        classes: class names, index = label.
        source: the folder the files were listed from.
    """

    root: Path
    paths: list[Path]
    labels: torch.Tensor
    classes: list[str]
    source: str

    def subset(self, indices: np.ndarray | list[int]) -> "FilePool":
        """The pool restricted to `indices` (in that order)."""
        idx = [int(i) for i in indices]
        return FilePool(self.root, [self.paths[i] for i in idx], self.labels[idx], self.classes, self.source)


def _root(path: str | Path) -> Path:
    root = Path(path).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        full = "" if root.is_absolute() else f" (resolved to {root.resolve()})"
        raise DataError(
            f"data.path: image folder {root} {what}{full}: "
            "point data.path at a folder with one sub-folder of images per class", "data.path"
        )
    _check_split_names(root)
    return root


SPLIT_NAMES = {"train", "val", "valid", "validation", "test"}


def _check_split_names(root: Path) -> None:
    """Refuse split folders archsearch would misread: val/ beside train/ + test/ (never read), or
    split folders without the train/ + test/ pair (read as classes named "train", "val")."""
    names = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    splits = sorted(names & SPLIT_NAMES)
    layout = ("archsearch reads <path>/train/<class>/ and <path>/test/<class>/, and carves the validation "
              "split from train/ (data.val_fraction)")
    unread = [s for s in splits if s not in ("train", "test")]
    if _has_split_dirs(root) and unread:
        raise DataError(f"data.path: {root} has {'/, '.join(unread)}/ beside "
                        f"train/ and test/, which would not be read: {layout}; move its class folders into "
                        "train/ or remove it", "data.path")
    if not _has_split_dirs(root) and splits and names <= SPLIT_NAMES:
        raise DataError(f"data.path: {root} holds split folders ({'/, '.join(splits)}/), not class folders: "
                        f"{layout}; a folder without train/ and test/ must hold one folder per class", "data.path")


def _has_split_dirs(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


def class_names(folder: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of `folder` (no image is opened)."""
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(
            f"image folder {folder} has no class sub-folders: put each class's images in "
            f"{folder}/<class name>/ (extensions {', '.join(sorted(EXTENSIONS))})"
        )
    return names


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")
    )


def scan(folder: Path, root: Path, classes: list[str] | None = None, *, allow_missing: bool = False) -> FilePool:
    """List the images of `folder`/<class>/ (recursively), one label a class.

    Args:
        folder: the folder holding class sub-folders.
        root: the dataset root (for relative paths).
        classes: class names to use (e.g. train's, for test/); default: `folder`'s sub-folders.
        allow_missing: a class in `classes` may lack a sub-folder (test/ need not hold every class).

    Raises:
        DataError: no class folders, an empty class folder, or a class unknown to `classes`.
    """
    found = class_names(folder)
    if classes is None:
        classes = found
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DataError(
                f"{folder} has class folders {unknown} that {root / 'train'} lacks: "
                f"train classes are {classes}"
            )
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        sub = folder / name
        if not sub.is_dir():
            if allow_missing:
                continue
            raise DataError(f"class folder {sub} is missing")
        files = _images_in(sub)
        if not files:
            raise DataError(
                f"class folder {sub} holds no images (looked for {', '.join(sorted(EXTENSIONS))}, any case): "
                "add images or remove the folder"
            )
        paths += files
        labels += [label] * len(files)
    return FilePool(root, paths, torch.tensor(labels, dtype=torch.int64), list(classes), str(folder))


def train_pool(path: str | Path, test_fraction: float) -> FilePool:
    """The non-test images: train/ when present, else all but the carved test part."""
    root = _root(path)
    if _has_split_dirs(root):
        return scan(root / "train", root)
    pool = scan(root, root)
    rest, _ = carve_test(pool.labels, test_fraction)
    return pool.subset(rest)


def heldout_pool(path: str | Path, test_fraction: float) -> FilePool:
    """The test images. Only archsearch.data.testsplit may call this."""
    root = _root(path)
    if _has_split_dirs(root):
        return scan(root / "test", root, class_names(root / "train"), allow_missing=True)
    pool = scan(root, root)
    _, test = carve_test(pool.labels, test_fraction)
    return pool.subset(test)


@dataclass(frozen=True)
class _Failure:
    """An image that could not be read (returned, not raised, so workers report it cleanly)."""

    path: str
    reason: str


class ImageFiles(Dataset):
    """Map-style dataset: index → (uint8 [C, H, W], label) or a _Failure.

    Args:
        paths: image files.
        labels: int labels.
        mode: PIL mode, "L" or "RGB".
        size: (H, W) every image is resized to.
    """

    def __init__(self, paths: list[Path], labels: list[int], mode: str, size: tuple[int, int]) -> None:
        self.paths = [str(p) for p in paths]
        self.labels = labels
        self.mode = mode
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | _Failure:
        from PIL import Image

        path = self.paths[i]
        try:
            with Image.open(path) as im:
                im = im.convert(self.mode)
                if im.size != (self.size[1], self.size[0]):
                    im = im.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
        except Exception as e:  # corrupt, truncated, not an image, unreadable...
            return _Failure(path, f"{type(e).__name__}: {e}")
        t = torch.from_numpy(arr.copy())
        t = t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)
        return t.contiguous(), self.labels[i]


def _collate(items: list) -> tuple[torch.Tensor, torch.Tensor] | _Failure:
    for item in items:
        if isinstance(item, _Failure):
            return item
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.int64)


class FolderSource(BatchSource):
    """A split of image files, decoded per batch by a DataLoader with `workers` processes.

    Args:
        pool: the files and labels.
        pipeline: per-batch conversion; its native shape is [channels, H, W] of the decoded images.
        device: where batches go.
        workers: DataLoader worker processes (0: decode in this process).
    """

    def __init__(self, pool: FilePool, pipeline: BatchPipeline, device: str | torch.device = "cpu",
                 workers: int = 0) -> None:
        c, h, w = pipeline.native_shape
        if c not in (1, 3):
            raise DataError(f"image folders give 1 (L) or 3 (RGB) channels, not {c}: change model.input")
        self.pool = pool
        self.pipeline = pipeline
        self.device = torch.device(device)
        self.workers = int(workers)
        self.labels = pool.labels.to(torch.int64).contiguous()
        self.num_samples = len(pool.paths)
        self._dataset = ImageFiles(pool.paths, self.labels.tolist(), "L" if c == 1 else "RGB", (h, w))

    def raw_batches(
        self, batch_size: int, order: torch.Tensor | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        sampler = order.tolist() if order is not None else range(self.num_samples)
        loader = DataLoader(
            self._dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
        )
        for batch in loader:
            if isinstance(batch, _Failure):
                raise DataError(
                    f"cannot read image {batch.path} ({batch.reason}): replace or delete the file"
                )
            x, y = batch
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def fingerprint(self) -> str:
        """sha256 over the sorted (path relative to the dataset root, label) pairs."""
        root = self.pool.root
        pairs = sorted(
            (Path(p).relative_to(root).as_posix() if Path(p).is_relative_to(root) else str(p), int(y))
            for p, y in zip(self.pool.paths, self.labels.tolist())
        )
        h = hashlib.sha256()
        for rel, y in pairs:
            h.update(f"{rel}\t{y}\n".encode())
        return h.hexdigest()
