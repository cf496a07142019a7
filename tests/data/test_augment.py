"""Each batch augmentation does what it must, keeps the shape, and is seeded by the generator."""

from __future__ import annotations

import pytest
import torch

from archsearch.data import augment as A
from archsearch.data.pipeline import BatchPipeline
from archsearch.errors import DataError
from archsearch.spec.data import DataSpec


def _batch(b: int = 6, c: int = 2, h: int = 10, w: int = 10) -> torch.Tensor:
    return torch.arange(b * c * h * w, dtype=torch.float32).reshape(b, c, h, w) + 1.0  # no zeros


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _shift_ref(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """img [C, H, W] moved down dy / right dx with zero fill, by slicing."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = img[:, ys, xs]
    return out


def test_hflip_p1_is_flip_and_p0_is_identity() -> None:
    x = _batch()
    assert torch.equal(A.hflip(x, 1.0, _gen()), torch.flip(x, dims=[-1]))
    assert torch.equal(A.hflip(x, 0.0, _gen()), x)


def test_rotate90_keeps_each_images_pixel_multiset() -> None:
    x = _batch(b=16)
    y = A.rotate90(x, _gen())
    assert y.shape == x.shape
    assert torch.equal(y.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
    assert not torch.equal(y, x)  # 16 images: some k > 0 drawn
    for i in range(len(x)):  # each image is some rotation of the original
        assert any(torch.equal(y[i], torch.rot90(x[i], k, dims=(-2, -1))) for k in range(4))


def test_rotate90_refuses_non_square() -> None:
    with pytest.raises(DataError, match="square"):
        A.rotate90(_batch(h=8, w=10), _gen())


def test_rotation_keeps_shape_and_zero_fills_corners() -> None:
    x = torch.ones(4, 1, 16, 16)
    y = A.rotation(x, 45.0, _gen())
    assert y.shape == x.shape
    assert torch.allclose(y[:, :, 8, 8], torch.ones(4, 1), atol=1e-5)  # centre stays
    assert (y[:, :, 0, 0] < 1).any()  # some corner rotated out → zero fill


@pytest.mark.parametrize("kind", ["random_crop", "translate"])
def test_crop_and_translate_shift_content_by_the_drawn_offsets(kind: str) -> None:
    x = _batch(b=8)
    p = 3
    y = A.random_crop(x, p, _gen(5)) if kind == "random_crop" else A.translate(x, p, _gen(5))
    assert y.shape == x.shape
    g = _gen(5)  # the same draws, replayed
    if kind == "random_crop":
        dy = p - torch.randint(0, 2 * p + 1, (8,), generator=g)
        dx = p - torch.randint(0, 2 * p + 1, (8,), generator=g)
    else:
        dy = torch.randint(-p, p + 1, (8,), generator=g)
        dx = torch.randint(-p, p + 1, (8,), generator=g)
    for i in range(8):
        assert torch.equal(y[i], _shift_ref(x[i], int(dy[i]), int(dx[i])))
    assert (dy != 0).any() or (dx != 0).any()


def test_shift_moves_a_dot() -> None:
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 3, 3] = 1.0
    y = A.shift(x, torch.tensor([2]), torch.tensor([-1]))
    assert y[0, 0, 5, 2] == 1.0 and y.sum() == 1.0


def test_random_erasing_zeroes_one_rectangle_and_keeps_the_rest() -> None:
    x = _batch(b=8, h=12, w=12)
    y = A.random_erasing(x, 0.99, (0.1, 0.3), _gen(1))
    assert y.shape == x.shape
    mask = A.erasing_masks(x.shape, 0.99, (0.1, 0.3), _gen(1))[:, 0]  # replayed draws
    for i in range(8):
        zero = (y[i] == 0).all(0)
        assert torch.equal(zero, mask[i])
        assert torch.equal(y[i][:, ~zero], x[i][:, ~zero])
        if zero.any():  # a filled axis-aligned rectangle
            rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
            assert zero[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
            share = zero.float().mean()
            assert 0.0 < share <= 0.3 + 0.1  # rounding to whole pixels
    assert mask.any()


def test_pipeline_applies_augments_only_when_asked_and_erasing_after_normalise() -> None:
    spec = DataSpec(dataset="digits", augment=[{"type": "random_erasing", "p": 0.99, "scale": [0.2, 0.3]}])
    pipe = BatchPipeline((1, 8, 8), augments=spec.augment, mean=[0.5], std=[0.25])
    x = torch.full((4, 1, 8, 8), 255, dtype=torch.uint8)
    plain = pipe(x)
    assert torch.allclose(plain, torch.full_like(plain, 2.0))  # (1 - 0.5) / 0.25
    aug = pipe(x, augment=True, generator=_gen())
    assert set(aug.unique().tolist()) <= {0.0, 2.0} and (aug == 0).any()


def test_same_generator_seed_same_augmented_batch() -> None:
    augs = ["hflip", "rotation", "rotate90", "random_crop", "translate", "random_erasing"]
    spec = DataSpec(dataset="digits", augment=augs)
    pipe = BatchPipeline((1, 8, 8), augments=spec.augment)
    x = torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8)
    a = pipe(x, augment=True, generator=_gen(3))
    b = pipe(x, augment=True, generator=_gen(3))
    c = pipe(x, augment=True, generator=_gen(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
