"""Fashion-MNIST from the system folder (skipped where absent), the tensor cache, missing files."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import torch

from archsearch.data import idx, prepare_train_val
from archsearch.data.cache import tensor_cache_path
from archsearch.data.idx import read_idx
from archsearch.errors import DataError
from archsearch.spec.data import DataSpec

SYSTEM = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (SYSTEM / "train-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist is not installed"
)


@needs_fashion
def test_fashion_mnist_subsets_and_cache(_offline_cache: Path) -> None:
    spec = DataSpec(dataset="fashion_mnist", train_size=1000, val_size=200, augment=["hflip", "random_crop"])
    first = prepare_train_val(spec, (1, 28, 28))
    assert first.info["source"] == str(SYSTEM) and first.info["from_cache"] is False
    assert tensor_cache_path("fashion_mnist-train").is_file()
    assert str(tensor_cache_path("fashion_mnist-train")).startswith(str(_offline_cache))
    assert first.train.num_samples == 1000 and first.val.num_samples == 200
    assert set(first.info["train_class_counts"].values()) == {100}  # balanced classes, stratified
    assert first.classes[0] == "T-shirt/top" and len(first.classes) == 10
    t = time.perf_counter()
    second = prepare_train_val(spec, (1, 28, 28))
    assert second.info["from_cache"] is True and time.perf_counter() - t < 5
    assert second.train.fingerprint() == first.train.fingerprint()
    x, y = next(second.train.batches(64, shuffle=True, augment=True, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (64, 1, 28, 28) and y.dtype == torch.int64


@needs_fashion
def test_data_dir_with_torchvision_layout(tmp_path: Path) -> None:
    raw = tmp_path / "d" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (raw / name).symlink_to(SYSTEM / name)
    tv = prepare_train_val(DataSpec(dataset="fashion_mnist", train_size=100, val_size=50), (1, 28, 28),
                           data_dir=tmp_path / "d")
    assert tv.info["source"] == str(raw)


def _no_system_copy(monkeypatch: pytest.MonkeyPatch, name: str, where: Path) -> None:
    """Point the dataset's system folder at `where`, so the test holds on machines that have it."""
    monkeypatch.setitem(idx.DATASETS, name, dataclasses.replace(idx.DATASETS[name], system_dir=str(where)))


def test_missing_files_list_every_place_and_do_not_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("ARCHSEARCH_DATA", str(empty))
    _no_system_copy(monkeypatch, "mnist", tmp_path / "system")
    with pytest.raises(DataError) as e:
        prepare_train_val(DataSpec(dataset="mnist"), (1, 28, 28), data_dir=tmp_path / "given")
    msg = str(e.value)
    places = [tmp_path / "given", empty, empty / "MNIST" / "raw", tmp_path / "system",
              tmp_path / "cache" / "MNIST" / "raw"]
    for place in places:
        assert str(place) in msg
    assert "ARCHSEARCH_OFFLINE" in msg and "--data-dir" in msg
    assert not (tmp_path / "cache" / "MNIST").exists()  # no download attempted


def test_missing_fashion_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_system_copy(monkeypatch, "fashion_mnist", tmp_path / "none")
    monkeypatch.setenv("ARCHSEARCH_DATA", str(tmp_path))
    with pytest.raises(DataError, match="sudo apt-get install dataset-fashion-mnist") as e:
        prepare_train_val(DataSpec(dataset="fashion_mnist"), (1, 28, 28))
    assert str(tmp_path / "none") in str(e.value)


def test_cifar_missing_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        prepare_train_val(DataSpec(dataset="cifar10"), (3, 32, 32), data_dir=tmp_path)


def test_read_idx_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3 + b"\x01\x02")
    with pytest.raises(DataError, match=str(bad)):
        read_idx(bad)
