"""MNIST and Fashion-MNIST: find the IDX files, decode them once, cache the tensors.

Lookup order for a split's files (each may be .gz or plain): the `data_dir` argument,
$ARCHSEARCH_DATA, the system folder (/usr/share/datasets/fashion-mnist or .../mnist),
torchvision's layout under the cache root (<root>/FashionMNIST/raw, <root>/MNIST/raw), then
torchvision's download into the cache root unless $ARCHSEARCH_OFFLINE is set. Every candidate
folder may hold the files directly or under FashionMNIST/raw (MNIST/raw).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from archsearch.data.cache import cache_root, cached_tensors, data_env_dir, offline
from archsearch.data.memory import TensorPool
from archsearch.errors import DataError


@dataclass(frozen=True)
class IdxDataset:
    name: str
    torchvision_name: str  # folder name and class in torchvision.datasets
    system_dir: str
    classes: tuple[str, ...]
    install_hint: str


DATASETS: dict[str, IdxDataset] = {
    "fashion_mnist": IdxDataset(
        "fashion_mnist",
        "FashionMNIST",
        "/usr/share/datasets/fashion-mnist",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "install it with `sudo apt-get install dataset-fashion-mnist`, or pass `--data-dir DIR` "
        "(a folder holding train-images-idx3-ubyte.gz and the other three IDX files)",
    ),
    "mnist": IdxDataset(
        "mnist",
        "MNIST",
        "/usr/share/datasets/mnist",
        tuple(str(i) for i in range(10)),
        "pass `--data-dir DIR` (or set ARCHSEARCH_DATA) to a folder holding train-images-idx3-ubyte.gz "
        "and the other three MNIST IDX files",
    ),
}

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Decode one IDX file (optionally gzip-compressed) of unsigned bytes.

    Raises:
        DataError: the file is not a readable IDX file.
    """
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
        if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
            raise ValueError("not an IDX file of unsigned bytes (bad magic number)")
        ndim = raw[3]
        dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        if data.size != int(np.prod(dims)):
            raise ValueError(f"header says {dims} but the file holds {data.size} values")
        return data.reshape(dims)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}. Delete or replace it.") from None


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def candidate_dirs(ds: IdxDataset, data_dir: str | Path | None) -> list[Path]:
    """Every folder searched for the IDX files, in lookup order."""
    bases: list[Path] = []
    if data_dir is not None:
        bases.append(Path(data_dir).expanduser())
    env = data_env_dir()
    if env is not None:
        bases.append(env)
    bases.append(Path(ds.system_dir))
    out: list[Path] = []
    for base in bases:
        out += [base, base / ds.torchvision_name / "raw"]
    out.append(cache_root() / ds.torchvision_name / "raw")
    return list(dict.fromkeys(out))


def locate(ds: IdxDataset, split: str, data_dir: str | Path | None) -> tuple[Path, Path]:
    """(images file, labels file) of `split`, downloading via torchvision as the last resort.

    Raises:
        DataError: the files are nowhere; lists every folder searched and how to get them.
    """
    images_stem, labels_stem = FILES[split]
    looked = candidate_dirs(ds, data_dir)
    for folder in looked:
        images, labels = _find_file(folder, images_stem), _find_file(folder, labels_stem)
        if images and labels:
            return images, labels
    where = "\n".join(f"  {p}" for p in looked)
    if offline():
        why = "downloading is disabled (ARCHSEARCH_OFFLINE is set)"
    else:
        why = _download(ds)
        if why is None:
            folder = cache_root() / ds.torchvision_name / "raw"
            images, labels = _find_file(folder, images_stem), _find_file(folder, labels_stem)
            if images and labels:
                return images, labels
            why = f"the download finished but {folder} lacks {images_stem}"
    raise DataError(
        f"{ds.name}: {images_stem}[.gz] and {labels_stem}[.gz] not found. Looked in:\n{where}\n"
        f"and {why}.\nTo get the data: {ds.install_hint}."
    )


def _download(ds: IdxDataset) -> str | None:
    """Download with torchvision into the cache root; None on success, else why it failed."""
    try:
        import torchvision.datasets as tvd

        root = cache_root()
        root.mkdir(parents=True, exist_ok=True)
        getattr(tvd, ds.torchvision_name)(root=str(root), train=True, download=True)
        getattr(tvd, ds.torchvision_name)(root=str(root), train=False, download=True)
        return None
    except Exception as e:  # no network, proxy, disk full...
        return f"downloading into {cache_root()} failed ({type(e).__name__}: {e})"


def _decode(ds: IdxDataset, split: str, data_dir: str | Path | None) -> dict:
    images_path, labels_path = locate(ds, split, data_dir)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{images_path} and {labels_path} do not match: images {list(images.shape)}, labels {list(labels.shape)}"
        )
    return {
        "images": torch.from_numpy(images.copy()).unsqueeze(1),
        "labels": torch.from_numpy(labels.astype(np.int64)),
        "classes": list(ds.classes),
        "source": str(images_path.parent),
    }


def _load(name: str, split: str, data_dir: str | Path | None) -> TensorPool:
    ds = DATASETS[name]
    obj, hit = cached_tensors(f"{name}-{split}", lambda: _decode(ds, split, data_dir))
    return TensorPool(obj["images"], obj["labels"], list(obj["classes"]), obj["source"], hit)


def train_pool(name: str, data_dir: str | Path | None = None) -> TensorPool:
    """The official train split of `name` ("fashion_mnist" or "mnist")."""
    return _load(name, "train", data_dir)


def heldout_pool(name: str, data_dir: str | Path | None = None) -> TensorPool:
    """The official test split. Only archsearch.data.testsplit may call this."""
    return _load(name, "test", data_dir)
