"""The trainer on real small data: digits (scikit-learn) and a generated image folder."""

from __future__ import annotations

import json
import math

import pytest
import torch

from archsearch.build import build_model
from archsearch.data import prepare_train_val
from archsearch.data.testsplit import held_out_reads
from archsearch.errors import TrainingError
from archsearch.evaluate import evaluate_run
from archsearch.spec import load_spec, parse_spec
from archsearch.train import fit, seed_everything
from archsearch.train.optim import Schedule, make_optimizer, param_groups
from archsearch.train.run import train_run
from tests.conftest import ROOT

DIGITS = ROOT / "examples" / "digits_cnn.yaml"


def digits_spec(*overrides: str):
    return load_spec(DIGITS, list(overrides))


def test_digits_train_then_evaluate_reaches_90_percent(tmp_path):
    reads = held_out_reads()
    result = train_run(digits_spec(), tmp_path / "run", device="cpu", progress=False)
    assert held_out_reads() == reads, "training read the test split"
    assert result.metrics["val"]["accuracy"] >= 0.9
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 15 and history[-1]["train_loss"] < history[0]["train_loss"]
    ev = evaluate_run(tmp_path / "run", "test", device="cpu")
    assert held_out_reads() > reads
    assert ev["accuracy"] >= 0.9 and ev["n"] == 360
    assert len(ev["confusion_matrix"]) == 10 and sum(map(sum, ev["confusion_matrix"])) == 360
    assert ev["latency"]["ms_per_image_batch1"] > 0
    assert (tmp_path / "run" / "eval_test.json").is_file()


def test_same_seed_same_validation_metrics():
    spec = digits_spec("train.epochs=3", "train.deterministic=true", "train.precision=fp32")

    def once():
        seed_everything(spec.train.seed, True)
        data = prepare_train_val(spec.data, spec.model.input_shape)
        model = build_model(spec)
        return [(r.val_metric, r.val_loss) for r in fit(model, data, spec.train).history]

    assert once() == once()


def test_bf16_does_not_hurt_accuracy():
    accs = {}
    for precision in ("fp32", "bf16"):
        spec = digits_spec(f"train.precision={precision}")
        seed_everything(0)
        data = prepare_train_val(spec.data, spec.model.input_shape)
        r = fit(build_model(spec), data, spec.train)
        assert r.precision == precision
        accs[precision] = r.best_metric
    assert accs["bf16"] >= 0.9 and abs(accs["bf16"] - accs["fp32"]) < 0.03


def test_nan_loss_stops_with_reason_and_keeps_last_good_checkpoint(tmp_path):
    spec = digits_spec("train.epochs=4", "train.precision=fp32")
    data = prepare_train_val(spec.data, spec.model.input_shape)
    model = build_model(spec)
    ckpt = tmp_path / "best.pt"

    def poison(record):
        if record.epoch == 1:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingError, match="epoch 2") as info:
        fit(model, data, spec.train, on_epoch=poison, checkpoint=ckpt)
    assert info.value.reason == "nan_loss" and str(ckpt) in str(info.value)
    state = torch.load(ckpt, weights_only=True)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_early_stopping_stops_before_the_last_epoch():
    spec = digits_spec("train.epochs=40", "train.lr=0.03", "train.early_stopping={patience: 2, metric: val_loss}")
    data = prepare_train_val(spec.data, spec.model.input_shape)
    r = fit(build_model(spec), data, spec.train)
    assert r.stopped == "early_stopping" and len(r.history) < 40


def test_schedules():
    spec = parse_spec({"model": {"input": [1, 8, 8], "layers": [{"type": "flatten"}, {"type": "linear"}]},
                       "train": {"epochs": 10, "warmup_epochs": 1, "scheduler": "cosine", "lr": 0.1}}).train
    model = torch.nn.Linear(2, 2)
    s = Schedule(make_optimizer(model, spec), spec, steps_per_epoch=10)
    assert s.factor(0) == pytest.approx(0.1) and s.factor(9) == pytest.approx(1.0)
    assert s.factor(99) < 0.01 and s.factor(50) < s.factor(20)
    step = spec.model_copy(update={"scheduler": spec.scheduler.model_copy(update={"name": "step", "gamma": 0.5}),
                                   "warmup_epochs": 0})
    s = Schedule(make_optimizer(model, step), step, steps_per_epoch=10)
    assert [s.factor(e * 10) for e in range(3)] == [1.0, 0.5, 0.25]


def test_backbone_stage_lr_and_unfreeze_schedule():
    spec = parse_spec({
        "model": {"input": [1, 8, 8], "backbone": {"name": "resnet18", "small_input": True, "freeze": ["stem", "layer1"]}},
        "data": {"dataset": "digits"},
        "train": {"epochs": 2, "batch_size": 256, "lr_multipliers": {"stem": 0.1, "head": 2.0},
                  "unfreeze": {"after_epochs": 1, "stages": ["layer1"]}},
    })
    model = build_model(spec)
    groups = {g["stage"]: g["lr"] for g in param_groups(model, spec.train)}
    assert groups["stem"] == pytest.approx(1e-4) and groups["head"] == pytest.approx(2e-3) and groups["layer2"] == 1e-3
    states = []
    data = prepare_train_val(spec.data.model_copy(update={"train_size": 256, "val_size": 64}), spec.model.input_shape)
    frozen_before = model.layer1[0].conv1.weight.clone()
    fit(model, data, spec.train, on_epoch=lambda r: states.append(model.layer1[0].conv1.weight.requires_grad))
    assert states == [False, True]
    assert not torch.equal(model.layer1[0].conv1.weight, frozen_before)
    assert not model.conv1.weight.requires_grad


def test_image_folder_end_to_end_with_macro_metrics(tmp_path):
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    root = tmp_path / "imgs"
    for c, (name, n) in enumerate({"circle": 30, "square": 20, "stripes": 12}.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            img = torch.randint(0, 60, (16, 16, 3), generator=gen, dtype=torch.uint8)
            if c == 0:
                img[4:12, 4:12, 0] = 250
            elif c == 1:
                img[:, :8, 1] = 250
            else:
                img[::2, :, 2] = 250
            Image.fromarray(img.numpy()).save(root / name / f"{i}.png")
    spec = parse_spec({
        "model": {"input": [3, 16, 16], "num_classes": 3,
                  "layers": [{"type": "conv2d", "out": 8}, {"type": "activation"}, {"type": "global_avg_pool"},
                             {"type": "linear"}]},
        "data": {"dataset": "image_folder", "path": str(root), "val_fraction": 0.2, "test_fraction": 0.2, "workers": 0},
        "train": {"epochs": 12, "lr": 0.02, "batch_size": 16, "metric": "macro_f1"},
    })
    result = train_run(spec, tmp_path / "run", progress=False)
    assert result.metrics["data"] and result.metrics["classes"] == ["circle", "square", "stripes"]
    assert result.metrics["val"]["metric"] == "macro_f1" and not math.isnan(result.metrics["val"]["value"])
    ev = evaluate_run(tmp_path / "run", "test")
    assert set(ev["per_class"]) == {"circle", "square", "stripes"} and ev["macro"]["f1"] > 0.5
