"""Image folders: class counts, batches, fingerprints, corrupt files and empty folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archsearch.data import prepare_train_val, testsplit
from archsearch.errors import DataError
from archsearch.spec.data import DataSpec


def _spec(root: Path, **kw) -> DataSpec:
    return DataSpec(dataset="image_folder", path=str(root), **{"workers": 0, "val_fraction": 0.2, **kw})


def test_counts_imbalance_and_batches(image_folder: Path) -> None:
    tv = prepare_train_val(_spec(image_folder, augment=["hflip", "random_crop"]), (3, 16, 16))
    assert tv.classes == ["circle", "square", "triangle"]
    counts = tv.info["train_class_counts"]
    assert sum(counts.values()) == tv.train.num_samples
    assert counts["circle"] > counts["square"] > counts["triangle"] > 0
    assert tv.info["imbalance_ratio"] == pytest.approx(max(counts.values()) / min(counts.values()))
    assert tv.info["imbalance_ratio"] > 1.5
    json.dumps(tv.info)
    # 25 images - carved test (10%) → 22, then 20% val
    assert tv.train.num_samples + tv.val.num_samples == 22
    g = torch.Generator().manual_seed(0)
    shapes = [tuple(x.shape) for x, _ in tv.train.batches(4, shuffle=True, augment=True, generator=g)]
    assert shapes[0] == (4, 3, 16, 16) and sum(s[0] for s in shapes) == tv.train.num_samples
    x, y = next(tv.train.batches(100))
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and torch.equal(y, tv.train.labels)
    assert abs(float(x.mean())) < 0.05  # auto normalisation from the train images


def test_fingerprint_stable_and_sensitive(image_folder: Path) -> None:
    a = prepare_train_val(_spec(image_folder), (3, 16, 16))
    b = prepare_train_val(_spec(image_folder), (3, 16, 16))
    assert a.train.fingerprint() == b.train.fingerprint() and len(a.train.fingerprint()) == 64
    c = prepare_train_val(_spec(image_folder, split_seed=1), (3, 16, 16))
    assert c.val.fingerprint() != a.val.fingerprint()


def test_grayscale_resize_and_upper_case_extensions(image_folder: Path) -> None:
    os.rename(image_folder / "circle" / "img00.png", image_folder / "circle" / "IMG00.PNG")
    tv = prepare_train_val(_spec(image_folder, resize=8), (1, 8, 8))
    assert tv.input_shape == (1, 8, 8) and next(tv.train.batches(5))[0].shape == (5, 1, 8, 8)
    assert tv.train.num_samples + tv.val.num_samples == 22
    with pytest.raises(DataError, match="data.resize"):
        prepare_train_val(_spec(image_folder, resize=8), (1, 16, 16))


def test_train_and_test_subfolders(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for split, n in (("train", 6), ("test", 2)):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (10, 12), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / cls / f"{i}.png")
    spec = _spec(tmp_path, val_fraction=0.25)
    before = testsplit.held_out_reads()
    tv = prepare_train_val(spec, (1, 16, 16))
    assert tv.train.num_samples + tv.val.num_samples == 12 and tv.info["test_split"] == "test/ sub-folder"
    assert testsplit.held_out_reads() == before
    test, classes = testsplit.load_test(spec, (1, 16, 16), mean=tv.mean, std=tv.std)
    assert classes == ["a", "b"] and test.num_samples == 4
    with pytest.raises(DataError, match=r"model.num_classes is 3 but the data has 2 classes \(a, b\)"):
        prepare_train_val(spec, (1, 16, 16), num_classes=3)
    # a val/ beside train/ and test/ would never be read; train/ + val/ alone would be read as two
    # classes named "train" and "val": both refused, naming the folder and the layout that is read
    (tmp_path / "val" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "val" / "a" / "0.png")
    with pytest.raises(DataError, match=r"has val/ beside train/ and test/, which would not be read"):
        prepare_train_val(spec, (1, 16, 16))
    (tmp_path / "test").rename(tmp_path.parent / f"{tmp_path.name}_held")
    for load in (lambda: prepare_train_val(spec, (1, 16, 16)),
                 lambda: testsplit.load_test(spec, (1, 16, 16), mean=tv.mean, std=tv.std)):
        with pytest.raises(DataError, match=r"holds split folders \(train/, val/\), not class folders"):
            load()


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_image_names_the_file(image_folder: Path, workers: int) -> None:
    bad = image_folder / "square" / "broken.png"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    spec = _spec(image_folder, workers=workers, normalize="none", val_fraction=0.5)
    tv = prepare_train_val(spec, (3, 16, 16))
    with pytest.raises(DataError, match="broken.png") as e:
        for source in (tv.train, tv.val):
            list(source.batches(4))
    assert str(bad) in str(e.value) and "Traceback" not in str(e.value)


def test_corrupt_image_during_auto_stats(image_folder: Path) -> None:
    (image_folder / "circle" / "zz.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="zz.jpg"):
        prepare_train_val(_spec(image_folder, test_fraction=0.2), (3, 16, 16))


def test_empty_class_and_missing_folder(image_folder: Path, tmp_path: Path) -> None:
    (image_folder / "empty").mkdir()
    (image_folder / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=str(image_folder / "empty")):
        prepare_train_val(_spec(image_folder), (3, 16, 16))
    with pytest.raises(DataError, match="does not exist"):
        prepare_train_val(_spec(tmp_path / "nowhere"), (3, 16, 16))
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        prepare_train_val(_spec(tmp_path / "flat"), (3, 16, 16))
