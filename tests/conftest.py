"""Shared fixtures: an offline 'ImageNet' torch cache written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture(scope="session")
def _weights_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TORCH_HOME whose hub cache holds (randomly initialised) resnet18/50 checkpoints under the
    file names torchvision's weights API looks for, so `pretrained: imagenet` loads offline."""
    import torch
    import torchvision

    from archsearch.build.backbones import imagenet_cache_path

    home = tmp_path_factory.mktemp("torch_home")
    import os

    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(home)
    try:
        for name in ("resnet18", "resnet50"):
            path = imagenet_cache_path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.manual_seed(0)
            torch.save(torchvision.models.get_model(name, weights=None).state_dict(), path)
    finally:
        if old is None:
            del os.environ["TORCH_HOME"]
        else:
            os.environ["TORCH_HOME"] = old
    return home


@pytest.fixture
def imagenet_cache(_weights_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(_weights_home))
    return _weights_home


@pytest.fixture
def write(tmp_path: Path):
    """write('name.yaml', text) → path of a file with that text in a temp dir."""

    def _write(name: str, text: str) -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p

    return _write
