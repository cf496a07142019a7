"""Blocks and the stack builder's in-place choices."""

from __future__ import annotations

import pytest
import torch

from archsearch.build import build_model
from archsearch.build.blocks import CBAM, FastDropout, SqueezeExcite
from archsearch.spec import parse_spec


@pytest.mark.parametrize("p", [0.1, 0.5, 0.7])
def test_fast_dropout_drops_p_and_keeps_the_mean(p):
    torch.manual_seed(0)
    d = FastDropout(p).train()
    x = torch.ones(64, 32, 16, 16)
    y = d(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 0.005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))
    assert abs(y.mean().item() - 1.0) < 0.02


def test_fast_dropout_keeps_channels_last_and_is_identity_in_eval():
    d = FastDropout(0.5)
    x = torch.randn(4, 8, 5, 5).contiguous(memory_format=torch.channels_last)
    assert d.train()(x).is_contiguous(memory_format=torch.channels_last)
    assert d.eval()(x) is x
    x.requires_grad_(True)
    y = d.train()(x)
    y.sum().backward()
    assert torch.equal(x.grad != 0, y != 0)  # gradient flows exactly through the kept units


def test_inplace_activation_never_touches_the_stack_input():
    spec = parse_spec({"model": {"input": [1, 4, 4], "layers": [
        {"type": "activation"}, {"type": "conv2d", "out": 2}, {"type": "activation"}, {"type": "flatten"},
        {"type": "linear"}]}})
    model = build_model(spec)
    assert model[0].inplace is False and model[2].inplace is True
    x = torch.randn(2, 1, 4, 4)
    before = x.clone()
    model(x).sum().backward()
    assert torch.equal(x, before)


@pytest.mark.parametrize("block", [CBAM(16, reduction=4), SqueezeExcite(16, reduction=4)])
def test_attention_blocks_gate_without_changing_shape(block):
    x = torch.randn(2, 16, 6, 6)
    y = block(x)
    assert y.shape == x.shape
    # gates are in (0, 1): the output never exceeds the input in magnitude
    assert torch.all(y.abs() <= x.abs() + 1e-6)
