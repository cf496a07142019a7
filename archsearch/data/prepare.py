"""prepare_train_val: the train and val splits for training. It cannot reach the test split.

Only the train pools are imported here (`train_pool`); where the test part is carved from one
pool (digits, image folders without train/ and test/), those functions return the non-test part
only. The test split's one door is archsearch.data.testsplit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from archsearch.data import cifar, digits, folder, idx
from archsearch.data.base import TrainVal
from archsearch.data.memory import TensorPool
from archsearch.data.normalize import FOLDER_STATS_LIMIT, channel_stats, expand_channels, resolve
from archsearch.data.sources import Pool, batch_shape, make_source
from archsearch.data.splits import class_counts, imbalance_ratio, subset, train_val
from archsearch.errors import DataError
from archsearch.spec.data import DataSpec, MeanStd

STATS_BATCH = 4096
FOLDER_STATS_BATCH = 256
STATS_SEED = 0


def train_pool(spec: DataSpec, data_dir: str | Path | None = None) -> Pool:
    """Every non-test sample of the spec's dataset (before the train/val split)."""
    if spec.dataset in idx.DATASETS:
        return idx.train_pool(spec.dataset, data_dir)
    if spec.dataset == "cifar10":
        return cifar.train_pool(data_dir)
    if spec.dataset == "digits":
        return digits.train_pool(spec.test_fraction)
    if spec.dataset == "image_folder":
        return folder.train_pool(spec.path, spec.test_fraction)
    raise DataError(
        f"data.dataset: expected one of fashion_mnist, mnist, cifar10, digits, image_folder, got {spec.dataset!r}"
    )


def split_indices(pool: Pool, spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices into `pool`: stratified val_fraction with split_seed, then the
    train_size / val_size subsets."""
    tr, va = train_val(pool.labels, spec.val_fraction, spec.split_seed)
    if spec.train_size is not None:
        tr = tr[subset(pool.labels[tr], spec.train_size, "data.train_size", spec.split_seed)]
    if spec.val_size is not None:
        va = va[subset(pool.labels[va], spec.val_size, "data.val_size", spec.split_seed)]
    return tr, va


def data_key(spec: DataSpec, input_shape: tuple[int, ...]) -> str:
    """What decides the data a spec trains on (its data section and input shape): callers that check
    the data of many specs check each distinct key once."""
    import json

    return json.dumps([spec.model_dump(mode="json"), list(input_shape)], sort_keys=True)


def check_classes(classes: list[str], num_classes: int | None) -> None:
    """The model's outputs must be the data's classes: fewer fail on the first label past them, more
    are outputs no image ever trains."""
    if num_classes is not None and num_classes != len(classes):
        shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
        raise DataError(f"model.num_classes is {num_classes} but the data has {len(classes)} classes ({shown}): "
                        f"set model.num_classes: {len(classes)}", "model.num_classes")


def check_train_val(spec: DataSpec, input_shape: tuple[int, int, int], data_dir: str | Path | None = None,
                    num_classes: int | None = None) -> None:
    """Fail as prepare_train_val would on missing data, shapes, classes or impossible split sizes,
    without decoding images or computing statistics (a search checks its data before the first trial)."""
    pool = train_pool(spec, data_dir)
    batch_shape(pool, spec, tuple(int(s) for s in input_shape))
    check_classes(list(pool.classes), num_classes)
    split_indices(pool, spec)


def prepare_train_val(
    spec: DataSpec,
    input_shape: tuple[int, int, int],
    *,
    device: str | torch.device = "cpu",
    data_dir: str | Path | None = None,
    merge_val: bool = False,
    num_classes: int | None = None,
) -> TrainVal:
    """Load, split and normalise the train and val splits of `spec` on `device`.

    Args:
        spec: the data section.
        input_shape: the model's input [C, H, W]; batches must have it.
        device: where images (in-memory datasets) and batches live.
        data_dir: a folder searched first for dataset files (the CLI's --data-dir).
        merge_val: train on train + val (the final re-training of `archsearch best`); `val` is
            still the val split, so its metrics are no longer held out. Normalisation statistics
            stay those of the train split, as in the search.
        num_classes: the model's outputs (model.num_classes): must equal the data's class count.

    Returns:
        TrainVal with sources whose batches are normalised float32 [B, *input_shape].

    Raises:
        DataError: data missing or unreadable, splits impossible, or shapes or classes not matching.
    """
    device = torch.device(device)
    input_shape = tuple(int(s) for s in input_shape)
    pool = train_pool(spec, data_dir)
    shape = batch_shape(pool, spec, input_shape)  # fail on shapes and classes before any heavy work
    check_classes(list(pool.classes), num_classes)
    tr, va = split_indices(pool, spec)
    train_part, val_part = pool.subset(tr), pool.subset(va)
    mean, std = resolve(
        spec.normalize,
        shape[0],
        lambda: expand_channels(_train_stats(train_part, spec, input_shape, device), shape[0]),
    )
    fit_part = pool.subset(np.concatenate([tr, va])) if merge_val else train_part
    train = make_source(fit_part, spec, input_shape, device=device, mean=mean, std=std, augments=spec.augment)
    val = make_source(val_part, spec, input_shape, device=device, mean=mean, std=std)
    counts = class_counts(train.labels, pool.classes)
    info = {
        "dataset": spec.dataset,
        "source": pool.source,
        "from_cache": bool(pool.cached) if isinstance(pool, TensorPool) else False,
        "test_split": _test_split_kind(spec, pool),
        "split_seed": spec.split_seed,
        "sizes": {"train": train.num_samples, "val": val.num_samples},
        "merged_val": merge_val,
        "train_class_counts": counts,
        "val_class_counts": class_counts(val.labels, pool.classes),
        "imbalance_ratio": imbalance_ratio(counts),
        "stored_shape": list(train.pipeline.native_shape),
        "input_shape": list(shape),
        "normalize": spec.normalize.model_dump() if isinstance(spec.normalize, MeanStd) else spec.normalize,
        "train_fingerprint": train.fingerprint(),
        "val_fingerprint": val.fingerprint(),
    }
    return TrainVal(train, val, list(pool.classes), shape, tuple(mean), tuple(std), info)


def _train_stats(
    part: Pool, spec: DataSpec, input_shape: tuple[int, int, int], device: torch.device
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel statistics of the stored train images: all of them at native resolution for
    tensors; at most FOLDER_STATS_LIMIT (seeded sample) decoded images for image folders."""
    if isinstance(part, TensorPool):
        images = part.images
        return channel_stats(images[i : i + STATS_BATCH] for i in range(0, len(images), STATS_BATCH))
    source = make_source(part, spec, input_shape, device=device)
    order = None
    if source.num_samples > FOLDER_STATS_LIMIT:
        g = torch.Generator().manual_seed(STATS_SEED)
        order = torch.randperm(source.num_samples, generator=g)[:FOLDER_STATS_LIMIT]
    return channel_stats(x for x, _ in source.raw_batches(FOLDER_STATS_BATCH, order))


def _test_split_kind(spec: DataSpec, pool: Pool) -> str:
    if spec.dataset == "digits":
        return f"carved (test_fraction={spec.test_fraction}, fixed seed)"
    if spec.dataset == "image_folder":
        root = Path(spec.path).expanduser()
        if (root / "train").is_dir() and (root / "test").is_dir():
            return "test/ sub-folder"
        return f"carved (test_fraction={spec.test_fraction}, fixed seed)"
    return "official"
