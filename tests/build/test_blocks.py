"""Blocks and the stack builder's in-place choices."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from archsearch.build import build_model
from archsearch.build.blocks import CBAM, FastDropout, Flatten, SqueezeExcite, Stack
from archsearch.spec import parse_spec


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.7])  # 16-bit and 8-bit lanes, exact and inexact scales
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
    xb = torch.randn(4, 8, 5, 5, dtype=torch.bfloat16).requires_grad_(True)
    yb = d(xb)
    yb.sum().backward()
    assert yb.dtype == torch.bfloat16 and set(xb.grad.unique().tolist()) == {0.0, 2.0}  # p = 0.5: kept units × 2
    assert torch.equal(yb, xb.detach() * xb.grad)


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


def _plain(m: nn.Module) -> nn.Module:
    """The same modules in torch's nn.Sequential: the spec's order, always."""
    for name, child in m.named_children():
        setattr(m, name, _plain(child))
    return nn.Sequential(*m) if isinstance(m, Stack) else m


@pytest.mark.parametrize("act", [{"fn": "relu"}, {"fn": "leaky_relu", "slope": 0.1}])
@pytest.mark.parametrize("nested", [False, True])
def test_a_stack_pools_before_a_monotone_activation_in_training_with_the_same_result(act, nested):
    block = [{"type": "conv2d", "out": 8}, {"type": "batchnorm"}, {"type": "activation", **act}]
    first = [{"type": "repeat", "n": 2, "layers": block}] if nested else block  # S3's VGG blocks are repeats
    spec = parse_spec({"model": {"input": [3, 12, 12], "layers": [
        *first, {"type": "maxpool"},
        {"type": "conv2d", "out": 8}, {"type": "activation", **act}, {"type": "flatten"}, {"type": "linear"}]}})
    torch.manual_seed(0)
    model = build_model(spec).train()
    plain = _plain(copy.deepcopy(model)).train()
    act_module = model[0][1][2] if nested else model[2]
    seen = []
    act_module.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[2:])))
    x = torch.randn(16, 3, 12, 12).contiguous(memory_format=torch.channels_last)
    out, ref = model(x), plain(x)
    assert seen == [(6, 6)]  # the activation ran after the pool, on a quarter of the elements
    assert torch.equal(out, ref)
    out.square().sum().backward()
    ref.square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), plain.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6), name
    model.eval()(x)
    assert seen[-1] == (12, 12)  # eval mode (export, explain hooks): the spec's order


def test_flatten_sends_a_channels_last_gradient_back_channels_last():
    x = torch.randn(4, 6, 5, 5).contiguous(memory_format=torch.channels_last)
    w = torch.randn(4, 150)
    grads = {}
    for name, flatten in [("archsearch", Flatten()), ("torch", nn.Flatten())]:
        h = (x * 1.0).requires_grad_(True)  # a leaf's .grad takes the leaf's layout: look at the hook's
        h.register_hook(lambda g, name=name: grads.__setitem__(name, g))
        out = flatten(h)
        (out * w).sum().backward()
        assert torch.equal(out, x.flatten(1))
    assert grads["archsearch"].is_contiguous(memory_format=torch.channels_last)
    assert not grads["torch"].is_contiguous(memory_format=torch.channels_last)  # what nn.Flatten sends back
    assert torch.equal(grads["archsearch"], grads["torch"])


@pytest.mark.parametrize("block", [CBAM(16, reduction=4), SqueezeExcite(16, reduction=4)])
def test_attention_blocks_gate_without_changing_shape(block):
    x = torch.randn(2, 16, 6, 6)
    y = block(x)
    assert y.shape == x.shape
    # gates are in (0, 1): the output never exceeds the input in magnitude
    assert torch.all(y.abs() <= x.abs() + 1e-6)
