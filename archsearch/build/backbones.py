"""torchvision ResNets and their variants, built on torchvision's own classes.

A variant is data (BackboneSpec) applied to torchvision's model in a fixed order: load weights →
adapt the stem (input channels, small inputs) → depthwise convs → attention → activation → head →
freeze. With no variant the module *is* torchvision's ResNet: its state_dict keys are unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from archsearch.build.blocks import CBAM, DepthwiseSeparableConv, SqueezeExcite
from archsearch.build.factories import get_act_layer
from archsearch.errors import BuildError
from archsearch.spec.model import STAGES, BackboneSpec, ModelSpec


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d that stays in eval mode whatever `.train()` says (running stats never move).

    Frozen stages swap their BatchNorm2d to this class in place (same parameters and state_dict
    keys), and back when they are unfrozen."""

    def train(self, mode: bool = True) -> "FrozenBatchNorm2d":
        return super().train(False)


def imagenet_cache_path(name: str) -> Path:
    """Where torchvision's weights API caches the default ImageNet weights of `name`."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _imagenet_state(name: str) -> dict[str, torch.Tensor]:
    weights = torchvision.models.get_model_weights(name).DEFAULT
    try:
        return weights.get_state_dict(progress=False)
    except Exception as e:  # offline: URLError / OSError / hash mismatch
        raise BuildError(
            f"model.backbone.pretrained: ImageNet weights for {name} ({weights}) are not in the torch "
            f"cache ({imagenet_cache_path(name)}) and could not be downloaded ({type(e).__name__}: {e}). "
            f"On a machine with internet run: python -c \"import torchvision; "
            f"torchvision.models.get_model('{name}', weights='DEFAULT')\" and copy the file there, "
            "or pass `pretrained: <path to the .pth file>`."
        ) from None


def _file_state(path: str) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BuildError(f"model.backbone.pretrained: weights file not found: {path}") from None
    except Exception as e:  # torch's own text runs to a dozen lines (weights_only advice): the gist
        import zipfile

        what = ("it holds objects other than tensors (a whole pickled model?)"
                if zipfile.is_zipfile(path) and "Weights only load failed" in str(e) else "not a file torch.save wrote")
        raise BuildError(f"model.backbone.pretrained: cannot read {path} as a state_dict: {what}. Save the "
                         "weights with torch.save(model.state_dict(), path)") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BuildError(f"model.backbone.pretrained: {path} does not hold a state_dict of tensors")
    return obj


def _load_pretrained(net: ResNet, bb: BackboneSpec) -> None:
    src = bb.pretrained_source
    if src is None:
        return
    state = _imagenet_state(bb.name) if src == "imagenet" else _file_state(src)
    own = net.state_dict()
    # A checkpoint trained for another number of classes: keep everything but the classifier.
    state = {k: v for k, v in state.items() if not (k.startswith("fc.") and k in own and v.shape != own[k].shape)}
    missing = [k for k in own if k not in state and not k.startswith("fc.")]
    unexpected = [k for k in state if k not in own]
    bad_shape = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
    if missing or unexpected or bad_shape:
        raise BuildError(
            f"model.backbone.pretrained: {src} is not a torchvision {bb.name} state_dict "
            f"(missing: {missing[:3]}, unexpected: {unexpected[:3]}, wrong shape: {bad_shape[:3]})"
        )
    net.load_state_dict(state, strict=False)


def adapt_stem_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Pretrained RGB stem filters for another channel count.

    1 channel: the sum over R, G, B — a grey image x gives the same response as the RGB image
    (x, x, x) did. Other counts: the RGB filters cycled over the new channels and scaled by 3/C so
    the response to a constant image keeps its size."""
    if in_channels == 3:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_channels // 3)
    return weight.repeat(1, reps, 1, 1)[:, :in_channels] * (3.0 / in_channels)


def _adapt_stem(net: ResNet, bb: BackboneSpec, in_channels: int) -> None:
    old = net.conv1
    if bb.small_input:
        net.conv1 = nn.Conv2d(in_channels, old.out_channels, 3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        net.maxpool = nn.Identity()
    elif in_channels != old.in_channels:
        new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
        with torch.no_grad():
            if bb.pretrained_source is not None:
                new.weight.copy_(adapt_stem_weight(old.weight, in_channels))
            else:
                nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
        net.conv1 = new


def _blocks(net: ResNet) -> Iterator[BasicBlock | Bottleneck]:
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        yield from getattr(net, stage)


def _depthwise(conv: nn.Conv2d) -> DepthwiseSeparableConv:
    return DepthwiseSeparableConv(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation[0], bias=False
    )


def _apply_depthwise(net: ResNet) -> None:
    for block in _blocks(net):
        for name in ("conv1", "conv2"):
            conv = getattr(block, name)
            if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.groups == 1:
                setattr(block, name, _depthwise(conv))


def _apply_attention(net: ResNet, kind: str) -> None:
    for block in _blocks(net):
        last_bn = "bn3" if isinstance(block, Bottleneck) else "bn2"
        bn = getattr(block, last_bn)
        attn = CBAM(bn.num_features) if kind == "cbam" else SqueezeExcite(bn.num_features)
        setattr(block, last_bn, nn.Sequential(bn, attn))


def _swap_activation(module: nn.Module, bb: BackboneSpec) -> None:
    make = get_act_layer(bb.activation)
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, make())
        else:
            _swap_activation(child, bb)


def _head(in_features: int, model: ModelSpec) -> nn.Module:
    bb = model.backbone
    assert bb is not None
    if not bb.head.hidden and bb.head.dropout == 0:
        return nn.Linear(in_features, model.num_classes)
    act = get_act_layer(bb.activation)
    layers: list[nn.Module] = []
    width = in_features
    for h in bb.head.hidden:
        if bb.head.dropout:
            layers.append(nn.Dropout(bb.head.dropout))
        layers += [nn.Linear(width, h), act()]
        width = h
    if bb.head.dropout:
        layers.append(nn.Dropout(bb.head.dropout))
    layers.append(nn.Linear(width, model.num_classes))
    return nn.Sequential(*layers)


def stage_modules(net: nn.Module) -> dict[str, list[nn.Module]]:
    """The modules of each stage of a built ResNet: stem, layer1..layer4, head."""
    if not isinstance(net, ResNet):
        raise TypeError("stages exist for backbone models only")
    return {
        "stem": [net.conv1, net.bn1],
        "layer1": [net.layer1],
        "layer2": [net.layer2],
        "layer3": [net.layer3],
        "layer4": [net.layer4],
        "head": [net.fc],
    }


def set_frozen(net: nn.Module, stages: list[str] | tuple[str, ...], frozen: bool = True) -> None:
    """Freeze (or unfreeze) stages: requires_grad off and BatchNorm held in eval mode (or back)."""
    groups = stage_modules(net)
    for stage in stages:
        for module in groups[stage]:
            for p in module.parameters():
                p.requires_grad_(not frozen)
            for m in module.modules():
                if frozen and type(m) is nn.BatchNorm2d:
                    m.__class__ = FrozenBatchNorm2d
                    m.eval()
                elif not frozen and type(m) is FrozenBatchNorm2d:
                    m.__class__ = nn.BatchNorm2d
                    m.train(net.training)


def build_backbone(model: ModelSpec) -> ResNet:
    bb = model.backbone
    assert bb is not None
    net: ResNet = torchvision.models.get_model(bb.name, weights=None)
    _load_pretrained(net, bb)
    _adapt_stem(net, bb, model.in_channels)
    if bb.depthwise:
        _apply_depthwise(net)
    if bb.attention != "none":
        _apply_attention(net, bb.attention)
    if bb.activation != "relu":
        _swap_activation(net, bb)
    if model.num_classes != net.fc.out_features or bb.head.hidden or bb.head.dropout:
        net.fc = _head(net.fc.in_features, model)
    set_frozen(net, [s for s in STAGES if s in bb.freeze])
    return net
