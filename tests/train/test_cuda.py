"""CUDA paths of the trainer (skipped without a GPU): bf16 autocast by default, fp16 with loss
scaling, GPU-resident data."""

from __future__ import annotations

import pytest
import torch

from archsearch.build import build_model
from archsearch.data import prepare_train_val
from archsearch.spec import load_spec
from archsearch.train import fit, resolve_precision, seed_everything
from tests.conftest import ROOT

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("precision", ["auto", "fp16", "fp32"])
def test_digits_on_cuda(precision):
    spec = load_spec(ROOT / "examples" / "digits_cnn.yaml", [f"train.precision={precision}"])
    seed_everything(0)
    data = prepare_train_val(spec.data, spec.model.input_shape, device="cuda")
    x, _ = next(data.train.batches(8))
    assert x.device.type == "cuda"
    result = fit(build_model(spec), data, spec.train, device="cuda")
    expected = resolve_precision(precision, torch.device("cuda"))
    assert result.precision == expected and (precision != "auto" or expected == "bf16")
    assert result.best_metric >= 0.9
