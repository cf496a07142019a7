"""CIFAR-10 through torchvision.datasets.CIFAR10: found on disk, downloaded only as the last resort.

Lookup order for the extracted `cifar-10-batches-py` folder: the `data_dir` argument,
$ARCHSEARCH_DATA, the cache root; then torchvision's download into the cache root unless
$ARCHSEARCH_OFFLINE is set. Decoded tensors are cached like the MNIST family's.
"""

from __future__ import annotations

from pathlib import Path

import torch

from archsearch.data.cache import cache_root, cached_tensors, data_env_dir, offline
from archsearch.data.memory import TensorPool
from archsearch.errors import DataError

FOLDER = "cifar-10-batches-py"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def candidate_roots(data_dir: str | Path | None) -> list[Path]:
    """Roots searched for cifar-10-batches-py, in lookup order."""
    roots = [Path(data_dir).expanduser()] if data_dir is not None else []
    env = data_env_dir()
    if env is not None:
        roots.append(env)
    roots.append(cache_root())
    return list(dict.fromkeys(roots))


def _open(root: Path, train: bool, download: bool):
    import torchvision.datasets as tvd

    return tvd.CIFAR10(root=str(root), train=train, download=download)


def _decode(train: bool, data_dir: str | Path | None) -> dict:
    looked = candidate_roots(data_dir)
    for root in looked:
        if (root / FOLDER).is_dir():
            try:
                ds = _open(root, train, download=False)
                break
            except Exception as e:
                raise DataError(f"cannot read CIFAR-10 from {root / FOLDER}: {e}. Delete or replace it.") from None
    else:
        where = "\n".join(f"  {p / FOLDER}" for p in looked)
        if offline():
            why = "downloading is disabled (ARCHSEARCH_OFFLINE is set)"
        else:
            try:
                ds = _open(cache_root(), train, download=True)
                why = ""
            except Exception as e:
                why = f"downloading into {cache_root()} failed ({type(e).__name__}: {e})"
        if why:
            raise DataError(
                f"cifar10: {FOLDER} not found. Looked in:\n{where}\nand {why}.\n"
                f"To get the data: pass `--data-dir DIR` (or set ARCHSEARCH_DATA) to a folder holding the "
                f"extracted {FOLDER} from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
            )
        root = cache_root()
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # NHWC → NCHW uint8
    return {
        "images": images,
        "labels": torch.as_tensor(ds.targets, dtype=torch.int64),
        "classes": list(getattr(ds, "classes", CLASSES)),
        "source": str(root / FOLDER),
    }


def _load(train: bool, data_dir: str | Path | None) -> TensorPool:
    key = "cifar10-" + ("train" if train else "test")
    obj, hit = cached_tensors(key, lambda: _decode(train, data_dir))
    return TensorPool(obj["images"], obj["labels"], list(obj["classes"]), obj["source"], hit)


def train_pool(data_dir: str | Path | None = None) -> TensorPool:
    """The official CIFAR-10 train split (50,000 images)."""
    return _load(True, data_dir)


def heldout_pool(data_dir: str | Path | None = None) -> TensorPool:
    """The official test split. Only archsearch.data.testsplit may call this."""
    return _load(False, data_dir)
