"""CUDA paths of the trainer (skipped without a GPU): bf16 autocast by default, fp16 with loss
scaling, GPU-resident data, the whole training step as one CUDA graph."""

from __future__ import annotations

import pytest
import torch

from archsearch.build import build_model
from archsearch.data import prepare_train_val
from archsearch.spec import load_spec
from archsearch.train import fit, resolve_precision, seed_everything
from tests.conftest import ROOT

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize(("precision", "graph"), [("auto", True), ("auto", False), ("fp16", False), ("fp32", True)])
def test_digits_on_cuda(precision, graph):
    spec = load_spec(ROOT / "examples" / "digits_cnn.yaml", [f"train.precision={precision}",
                                                              f"train.cuda_graph={str(graph).lower()}"])
    seed_everything(0)
    data = prepare_train_val(spec.data, spec.model.input_shape, device="cuda")
    x, _ = next(data.train.batches(8))
    assert x.device.type == "cuda"
    result = fit(build_model(spec), data, spec.train, device="cuda")
    expected = resolve_precision(precision, torch.device("cuda"))
    assert result.precision == expected and (precision != "auto" or expected == "bf16")
    assert result.cuda_graph == graph
    assert result.best_metric >= 0.9
    losses = [r.train_loss for r in result.history]
    assert losses[-1] < losses[0] / 3


def test_graphed_step_follows_the_schedule_and_clips():
    spec = load_spec(ROOT / "examples" / "digits_cnn.yaml", ["train.scheduler=cosine", "train.warmup_epochs=1",
                                                              "train.grad_clip=1.0", "train.epochs=4"])
    seed_everything(0)
    data = prepare_train_val(spec.data, spec.model.input_shape, device="cuda")
    result = fit(build_model(spec), data, spec.train, device="cuda")
    assert result.cuda_graph
    lrs = [r.lr for r in result.history]
    assert lrs[0] > lrs[-1] and lrs[-1] < 1e-3 * spec.train.lr + 1e-9 + lrs[0] * 0.2
    assert result.best_metric >= 0.85
