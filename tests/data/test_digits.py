"""End to end on scikit-learn's digits: shapes, normalisation, stratified splits, determinism."""

from __future__ import annotations

import json

import pytest
import torch

from archsearch.data import BatchSource, TrainVal, prepare_train_val
from archsearch.errors import DataError
from archsearch.spec.data import DataSpec

AUGS = ["hflip", "rotation", "rotate90", "random_crop", "translate", "random_erasing"]


def _all(source: BatchSource, bs: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*source.batches(bs))
    return torch.cat(xs), torch.cat(ys)


def test_digits_end_to_end() -> None:
    tv = prepare_train_val(DataSpec(dataset="digits", augment=AUGS), (1, 8, 8))
    assert isinstance(tv, TrainVal)
    assert tv.input_shape == (1, 8, 8) and tv.classes == [str(i) for i in range(10)]
    n = 1797 - round(1797 * 0.1)  # the carved test part is gone
    assert tv.train.num_samples + tv.val.num_samples == n
    assert tv.train.num_batches(100) == -(-tv.train.num_samples // 100)
    x, y = _all(tv.train, 100)
    assert x.shape == (tv.train.num_samples, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(y, tv.train.labels) and tv.train.labels.device.type == "cpu"
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    sizes = [len(b[0]) for b in tv.val.batches(50)]
    assert sum(sizes) == tv.val.num_samples and sizes[-1] == tv.val.num_samples % 50 or 50
    json.dumps(tv.info)
    assert tv.info["sizes"] == {"train": tv.train.num_samples, "val": tv.val.num_samples}
    assert sum(tv.info["train_class_counts"].values()) == tv.train.num_samples
    assert tv.info["imbalance_ratio"] >= 1


def test_val_is_stratified() -> None:
    tv = prepare_train_val(DataSpec(dataset="digits", val_fraction=0.2), (1, 8, 8))
    counts = torch.bincount(tv.val.labels, minlength=10).float()
    pool = torch.bincount(torch.cat([tv.train.labels, tv.val.labels]), minlength=10).float()
    assert torch.allclose(counts / counts.sum(), pool / pool.sum(), atol=0.01)


def test_split_and_batches_are_deterministic() -> None:
    spec = DataSpec(dataset="digits", augment=AUGS, split_seed=3)
    a, b = prepare_train_val(spec, (1, 8, 8)), prepare_train_val(spec, (1, 8, 8))
    assert a.train.fingerprint() == b.train.fingerprint() and a.val.fingerprint() == b.val.fingerprint()
    other = prepare_train_val(spec.model_copy(update={"split_seed": 4}), (1, 8, 8))
    assert other.val.fingerprint() != a.val.fingerprint()

    def run(tv: TrainVal, seed: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return [t for x, y in tv.train.batches(64, shuffle=True, augment=True, generator=g) for t in (x, y)]

    ra, rb, rc = run(a, 7), run(b, 7), run(a, 8)
    assert all(torch.equal(p, q) for p, q in zip(ra, rb))
    assert not torch.equal(ra[0], rc[0])


def test_subset_sizes_and_errors() -> None:
    tv = prepare_train_val(DataSpec(dataset="digits", train_size=200, val_size=50), (1, 8, 8))
    assert tv.train.num_samples == 200 and tv.val.num_samples == 50
    assert torch.bincount(tv.train.labels, minlength=10).min() >= 19  # stratified
    with pytest.raises(DataError, match="data.train_size=5000"):
        prepare_train_val(DataSpec(dataset="digits", train_size=5000), (1, 8, 8))
    with pytest.raises(DataError, match="data.val_size"):
        prepare_train_val(DataSpec(dataset="digits", val_size=5), (1, 8, 8))


def test_second_load_comes_from_the_cache() -> None:
    first = prepare_train_val(DataSpec(dataset="digits"), (1, 8, 8))
    second = prepare_train_val(DataSpec(dataset="digits"), (1, 8, 8))
    assert first.info["from_cache"] is False and second.info["from_cache"] is True
    assert first.train.fingerprint() == second.train.fingerprint()
