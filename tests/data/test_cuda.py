"""On CUDA: data stays on the device and the same generator seed gives the CPU's batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archsearch.data import prepare_train_val
from archsearch.spec.data import DataSpec

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
AUGS = ["hflip", "rotation", "rotate90", "random_crop", "translate", "random_erasing"]


def test_cuda_batches_match_cpu() -> None:
    spec = DataSpec(dataset="digits", augment=AUGS, resize=12, to_rgb=True)
    cpu = prepare_train_val(spec, (3, 12, 12), device="cpu")
    gpu = prepare_train_val(spec, (3, 12, 12), device="cuda")
    assert gpu.train._images.is_cuda and gpu.mean == pytest.approx(cpu.mean)
    gc, gg = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    pairs = zip(cpu.train.batches(128, shuffle=True, augment=True, generator=gc),
                gpu.train.batches(128, shuffle=True, augment=True, generator=gg))
    for (xc, yc), (xg, yg) in pairs:
        assert xg.is_cuda and yg.is_cuda and xg.dtype == torch.float32
        assert torch.equal(yc, yg.cpu())
        assert (xc - xg.cpu()).abs().max() < 1e-3
    assert cpu.train.fingerprint() == gpu.train.fingerprint()


def test_cuda_folder_batches(image_folder: Path) -> None:
    spec = DataSpec(dataset="image_folder", path=str(image_folder), workers=2, augment=["hflip", "random_erasing"])
    tv = prepare_train_val(spec, (3, 16, 16), device="cuda")
    x, y = next(tv.train.batches(8, shuffle=True, augment=True, generator=torch.Generator().manual_seed(0)))
    assert x.is_cuda and y.is_cuda and x.shape == (8, 3, 16, 16)
