"""Batch shapes after resize / to_rgb, the input-shape check, and the normalisation modes."""

from __future__ import annotations

import pytest
import torch

from archsearch.data import prepare_train_val
from archsearch.data.normalize import IMAGENET_MEAN, channel_stats
from archsearch.errors import DataError
from archsearch.spec.data import DataSpec


def test_resize_and_to_rgb_shapes() -> None:
    tv = prepare_train_val(DataSpec(dataset="digits", resize=16, to_rgb=True, val_size=20), (3, 16, 16))
    x, y = next(tv.val.batches(8))
    assert x.shape == (8, 3, 16, 16) and tv.input_shape == (3, 16, 16)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert len(tv.mean) == 3 and tv.mean[0] == tv.mean[2]
    x, _ = next(tv.train.batches(8, shuffle=True, augment=True, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (8, 3, 16, 16)


def test_downscale_shape() -> None:
    tv = prepare_train_val(DataSpec(dataset="digits", resize=4), (1, 4, 4))
    assert next(tv.train.batches(5))[0].shape == (5, 1, 4, 4)


@pytest.mark.parametrize(
    ("data", "shape", "hint"),
    [
        ({"resize": 32}, (1, 8, 8), "data.resize"),
        ({}, (1, 28, 28), "data.resize: 28"),
        ({}, (3, 8, 8), "data.to_rgb: true"),
        ({"to_rgb": True}, (1, 8, 8), "remove data.to_rgb"),
    ],
)
def test_input_shape_mismatch_says_what_to_change(data: dict, shape: tuple, hint: str) -> None:
    with pytest.raises(DataError, match="model.input") as e:
        prepare_train_val(DataSpec(dataset="digits", **data), shape)
    assert hint in str(e.value)


def test_normalize_modes() -> None:
    none = prepare_train_val(DataSpec(dataset="digits", normalize="none"), (1, 8, 8))
    x, _ = next(none.train.batches(1000))
    assert none.mean == (0.0,) and none.std == (1.0,) and 0 <= float(x.min()) and float(x.max()) <= 1
    net = prepare_train_val(DataSpec(dataset="digits", normalize="imagenet", to_rgb=True), (3, 8, 8))
    assert net.mean == IMAGENET_MEAN
    given = prepare_train_val(DataSpec(dataset="digits", normalize={"mean": [0.5], "std": [0.5]}), (1, 8, 8))
    x, _ = next(given.train.batches(1000))
    assert float(x.min()) >= -1 and float(x.max()) <= 1


def test_normalize_errors() -> None:
    with pytest.raises(DataError, match="imagenet needs 3"):
        prepare_train_val(DataSpec(dataset="digits", normalize="imagenet"), (1, 8, 8))
    with pytest.raises(DataError, match="1 channel"):
        prepare_train_val(DataSpec(dataset="digits", normalize={"mean": [0.1, 0.2], "std": [1, 1]}), (1, 8, 8))


def test_channel_stats_exact() -> None:
    x = torch.randint(0, 256, (50, 3, 5, 5), dtype=torch.uint8)
    mean, std = channel_stats([x[:20], x[20:]])
    xf = x.double() / 255
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), xf.mean((0, 2, 3)))
    assert torch.allclose(torch.tensor(std, dtype=torch.float64), xf.std((0, 2, 3), unbiased=False))
