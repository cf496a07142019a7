"""The test split is reachable only through load_test; prepare_train_val never reads it."""

from __future__ import annotations

from pathlib import Path

import torch

from archsearch.data import prepare_train_val, testsplit
from archsearch.spec.data import DataSpec


def test_prepare_never_reads_test_load_test_does(image_folder: Path) -> None:
    before = testsplit.held_out_reads()
    spec = DataSpec(dataset="digits", test_size=50)
    tv = prepare_train_val(spec, (1, 8, 8))
    prepare_train_val(DataSpec(dataset="image_folder", path=str(image_folder), workers=0), (3, 16, 16))
    assert testsplit.held_out_reads() == before

    test, classes = testsplit.load_test(spec, (1, 8, 8), mean=tv.mean, std=tv.std)
    assert testsplit.held_out_reads() == before + 1
    assert classes == tv.classes and test.num_samples == 50
    assert torch.bincount(test.labels, minlength=10).min() >= 4  # stratified subset
    x, y = next(test.batches(64))
    assert x.shape == (50, 1, 8, 8)
    # the carved test part is disjoint from train and val
    train_imgs = {bytes(v) for v in (torch.cat([b for b, _ in tv.train.raw_batches(512, None)]).flatten(1).numpy())}
    test_imgs = [bytes(v) for v in torch.cat([b for b, _ in test.raw_batches(512, None)]).flatten(1).numpy()]
    assert sum(t in train_imgs for t in test_imgs) <= 2  # digits has a few exact duplicates at most


def test_carved_test_part_ignores_split_seed() -> None:
    a, _ = testsplit.load_test(DataSpec(dataset="digits", split_seed=0), (1, 8, 8), mean=[0], std=[1])
    b, _ = testsplit.load_test(DataSpec(dataset="digits", split_seed=9), (1, 8, 8), mean=[0], std=[1])
    assert a.fingerprint() == b.fingerprint()


def test_folder_test_reads_counted_per_pass(image_folder: Path) -> None:
    spec = DataSpec(dataset="image_folder", path=str(image_folder), workers=0, test_fraction=0.2)
    before = testsplit.held_out_reads()
    test, classes = testsplit.load_test(spec, (3, 16, 16), mean=[0, 0, 0], std=[1, 1, 1])
    assert classes == ["circle", "square", "triangle"]
    list(test.batches(4))
    assert testsplit.held_out_reads() == before + 1
    train = prepare_train_val(spec, (3, 16, 16))
    assert train.train.num_samples + train.val.num_samples + test.num_samples == 25
    assert testsplit.held_out_reads() == before + 1
