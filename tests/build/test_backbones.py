"""ResNet backbones are torchvision's own modules: strict state_dict compatibility, freezing,
1-channel stems from pretrained weights, and the S4 variants."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

from archsearch.build import build_model, set_frozen
from archsearch.build.backbones import FrozenBatchNorm2d, adapt_stem_weight
from archsearch.errors import BuildError
from archsearch.spec import parse_spec


def model_of(**backbone):
    num_classes = backbone.pop("num_classes", 1000)
    inp = backbone.pop("input", None)
    m = {"backbone": backbone, "num_classes": num_classes}
    if inp:
        m["input"] = inp
    return parse_spec({"model": m})


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_plain_backbone_is_torchvision_resnet(name):
    torch.manual_seed(0)
    reference = torchvision.models.get_model(name).eval()
    ours = build_model(model_of(name=name, in_channels=3)).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


def test_state_dict_file_loads_and_one_channel_stem_sums_rgb(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18().eval()
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    ours = build_model(model_of(name="resnet18", pretrained=str(path), input=[1, 64, 64], num_classes=1000)).eval()
    assert torch.equal(ours.conv1.weight, reference.conv1.weight.sum(1, keepdim=True))
    grey = torch.randn(2, 1, 64, 64)
    with torch.no_grad():  # a grey image gives what its RGB copy gave the original network
        torch.testing.assert_close(ours(grey), reference(grey.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_checkpoint_with_other_classes_keeps_new_head(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    net = build_model(model_of(name="resnet18", pretrained=str(path), num_classes=10))
    assert net.fc.out_features == 10


def test_wrong_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(BuildError, match="not a torchvision resnet18 state_dict"):
        build_model(model_of(name="resnet18", pretrained=str(path)))
    (tmp_path / "notes.pt").write_text("not weights")
    torch.save(torchvision.models.resnet18(), tmp_path / "whole.pt")  # the model, not its state_dict
    for name, says in (("notes.pt", "not a file torch.save wrote"), ("whole.pt", "a whole pickled model?")):
        with pytest.raises(BuildError, match="Save the weights with torch.save") as e:
            build_model(model_of(name="resnet18", pretrained=str(tmp_path / name)))
        assert says in str(e.value) and len(str(e.value).splitlines()) == 1, str(e.value)


def test_a_trained_model_loads_without_its_pretrained_file(tmp_path):
    """The spec of a trained model still names the weights file it started from; evaluating it needs
    only its own checkpoint (same modules and keys with pretrained=False)."""
    path = tmp_path / "w.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    spec = model_of(name="resnet18", pretrained=str(path), input=[1, 32, 32], num_classes=4, freeze=["layer1"])
    trained = build_model(spec).state_dict()
    path.unlink()
    with pytest.raises(BuildError, match="weights file not found"):
        build_model(spec)
    bare = build_model(spec, pretrained=False)
    bare.load_state_dict(trained)  # strict: every key and shape as built with the weights
    assert not any(p.requires_grad for p in bare.layer1.parameters())


def test_imagenet_from_torch_cache(imagenet_cache):
    net = build_model(model_of(name="resnet18", pretrained="imagenet"))
    torch.manual_seed(0)
    assert torch.equal(net.conv1.weight, torchvision.models.resnet18().conv1.weight)


def test_imagenet_offline_without_cache_is_a_build_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # no network either way
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with pytest.raises(BuildError, match="torch cache"):
        build_model(model_of(name="resnet18", pretrained="imagenet"))


def test_freeze_keeps_weights_and_bn_statistics():
    net = build_model(model_of(name="resnet18", freeze=["stem", "layer1", "layer2"], num_classes=10, input=[3, 32, 32]))
    frozen = {k: v.clone() for k, v in net.state_dict().items() if k.startswith(("conv1", "bn1", "layer1", "layer2"))}
    assert all(not p.requires_grad for n, p in net.named_parameters() if n.startswith(("conv1", "bn1", "layer1", "layer2")))
    assert all(p.requires_grad for n, p in net.named_parameters() if n.startswith(("layer3", "layer4", "fc")))
    assert isinstance(net.bn1, FrozenBatchNorm2d) and isinstance(net.layer3[0].bn1, nn.BatchNorm2d)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    net.train()
    moving = net.layer3[0].bn1.running_mean.clone()
    for _ in range(2):
        opt.zero_grad()
        net(torch.randn(4, 3, 32, 32)).sum().backward()
        opt.step()
    after = net.state_dict()
    for k, v in frozen.items():
        assert torch.equal(after[k], v), k
    assert not torch.equal(net.layer3[0].bn1.running_mean, moving)
    set_frozen(net, ["layer2"], frozen=False)
    assert all(p.requires_grad for p in net.layer2.parameters())
    assert type(net.layer2[0].bn1) is nn.BatchNorm2d and net.layer2[0].bn1.training


@pytest.mark.parametrize("attention", ["cbam", "se"])
def test_s4_variants_build_and_change_the_blocks(attention):
    net = build_model(
        model_of(name="resnet50", activation="gelu", depthwise=True, attention=attention, num_classes=5, input=[3, 64, 64])
    )
    assert not any(isinstance(m, nn.ReLU) for m in net.modules() if m.__class__.__module__.startswith("torch"))
    assert any(isinstance(m, nn.GELU) for m in net.modules())
    conv2 = net.layer1[0].conv2
    assert conv2.depthwise.groups == conv2.depthwise.in_channels
    assert type(net.layer1[0].bn3[1]).__name__ == ("CBAM" if attention == "cbam" else "SqueezeExcite")
    out = net(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 5)


def test_small_input_and_head():
    net = build_model(
        model_of(name="resnet18", small_input=True, input=[1, 28, 28], num_classes=10, head={"hidden": [64], "dropout": 0.2})
    )
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1) and isinstance(net.maxpool, nn.Identity)
    assert [m.out_features for m in net.fc if isinstance(m, nn.Linear)] == [64, 10]
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_adapt_stem_weight_keeps_response_scale():
    w = torch.randn(8, 3, 3, 3)
    assert adapt_stem_weight(w, 3) is w
    assert torch.allclose(adapt_stem_weight(w, 6).sum(1), w.sum(1))
