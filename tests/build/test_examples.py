"""Every example spec validates, builds and maps [batch, C, H, W] → [batch, num_classes]; the seed
architectures have the parameter counts computed by hand from SEEDS.md's layer lists."""

from __future__ import annotations

import pytest
import torch

from archsearch.build import build_model, summarize
from archsearch.spec import load_spec
from tests.conftest import EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_builds_and_runs_forward(path, imagenet_cache):
    spec = load_spec(path)
    model = build_model(spec).eval()
    x = torch.randn(2, *spec.model.input_shape)
    with torch.no_grad():
        assert model(x).shape == (2, spec.model.num_classes)


def conv(cin: int, cout: int, k: int = 3, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def fc(fin: int, fout: int) -> int:
    return fin * fout + fout


def bn(c: int) -> int:
    return 2 * c  # weight + bias (running stats are buffers, not parameters)


HAND_COUNTS = {
    # S0: [[conv → dropout → act] × 2 → maxpool] × 2 → FC 256 → act → dropout → FC 10; flatten 256·7·7
    "s0_cnn": conv(1, 64) + conv(64, 128) + conv(128, 128) + conv(128, 256) + fc(256 * 7 * 7, 256) + fc(256, 10),
    "s0_cnn_leaky": conv(1, 64) + conv(64, 128) + conv(128, 128) + conv(128, 256) + fc(256 * 7 * 7, 256) + fc(256, 10),
    # S1 CustomNet: conv32 BN, conv64 BN, conv128 BN, FC 6272 → 10
    "s1_customnet": conv(1, 32) + bn(32) + conv(32, 64) + bn(64) + conv(64, 128) + bn(128) + fc(6272, 10),
    # S2 AlexNet-like: conv96 BN, conv256 BN, conv384, conv384, conv256, FC 1024→2048→2048→10
    "s2_alexnet": conv(1, 96) + bn(96) + conv(96, 256) + bn(256) + conv(256, 384) + conv(384, 384)
    + conv(384, 256) + fc(256 * 2 * 2, 2048) + fc(2048, 2048) + fc(2048, 10),
    # S3 (chosen layer list, see the spec's comment): 2×32, 2×64, 2×96 conv-BN, GAP, FC 96 → 10
    "s3_small_vgg": conv(1, 32) + conv(32, 32) + conv(32, 64) + conv(64, 64) + conv(64, 96) + conv(96, 96)
    + bn(32) * 2 + bn(64) * 2 + bn(96) * 2 + fc(96, 10),
}


@pytest.mark.parametrize("name", sorted(HAND_COUNTS))
def test_seed_parameter_counts_match_hand_counts(name):
    spec = load_spec(next(p for p in EXAMPLES if p.stem == name))
    s = summarize(build_model(spec), spec.model.input_shape)
    assert s.params == s.trainable_params == HAND_COUNTS[name]


def test_s3_stays_near_the_reported_size():
    spec = load_spec(next(p for p in EXAMPLES if p.stem == "s3_small_vgg"))
    s = summarize(build_model(spec), spec.model.input_shape)
    # the report's 198,351 counts BN running statistics too (Keras); ours are float buffers
    assert abs((s.params + s.buffers) - 198_351) / 198_351 < 0.05
