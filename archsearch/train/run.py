"""Train one concrete spec end to end and write its run directory.

A run directory holds: spec.yaml (the resolved spec, every default written out), best.pt (the
best weights by the validation metric), history.json (one record an epoch) and metrics.json
(validation metrics at the best epoch, model size, data split, normalisation, timings, versions).
"""

from __future__ import annotations

import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from archsearch.build import build_model, summarize
from archsearch.data import prepare_train_val
from archsearch.data.testsplit import test_split_forbidden
from archsearch.errors import ArchsearchError, TrainingError
from archsearch.fs import check_creatable_dir, ensure_writable_dir, write_json
from archsearch.spec.root import Spec
from archsearch.train.loop import FitResult, fit, seed_everything
from archsearch.train.precision import resolve_device

SPEC_FILE, WEIGHTS_FILE, HISTORY_FILE, METRICS_FILE = "spec.yaml", "best.pt", "history.json", "metrics.json"


def spec_to_yaml(spec: Spec) -> str:
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def versions() -> dict[str, str]:
    import torchvision

    from archsearch import __version__

    return {"archsearch": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


@dataclass
class RunResult:
    out: Path
    fit: FitResult
    metrics: dict


# what a run folder holds once trained, evaluated (eval_<split>.json) and explained (explain/)
RUN_OUTPUTS = (SPEC_FILE, WEIGHTS_FILE, HISTORY_FILE, METRICS_FILE, "eval_test.json", "eval_val.json", "explain")


def check_out_dir(out: Path, force: bool = False) -> None:
    """Before any work: --out is a folder that can be created, empty unless --force."""
    if out.exists() and not out.is_dir():
        raise ArchsearchError(f"--out {out} is a file; give a folder for the run directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ArchsearchError(f"--out {out} exists and is not empty; choose another folder or pass --force")
    check_creatable_dir(out, "--out")


def prepare_out_dir(out: Path, force: bool = False) -> None:
    """Create --out; with --force the earlier run's outputs go first (other files stay), so no stale
    evaluation or figure sits beside the new model."""
    check_out_dir(out, force)
    for name in RUN_OUTPUTS if force else ():
        old = out / name
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
    ensure_writable_dir(out, "--out")


def train_run(
    spec: Spec, out: Path, *, device: str | None = None, data_dir: str | None = None,
    progress: bool = True, force: bool = False,
) -> RunResult:
    """spec → data (train/val only) → model → fit → run directory."""
    check_out_dir(out, force)  # a bad --out is refused before the data is loaded
    dev = resolve_device(device)
    seed_everything(spec.train.seed, spec.train.deterministic)
    data = prepare_train_val(spec.data, spec.model.input_shape,
                             num_classes=spec.model.num_classes, device=dev, data_dir=data_dir)  # checks shapes
    model = build_model(spec)
    summary = summarize(model, spec.model.input_shape)
    prepare_out_dir(out, force)
    (out / SPEC_FILE).write_text(spec_to_yaml(spec))
    base = {
        "spec_name": spec.name,
        "classes": data.classes,
        "normalization": {"mean": list(data.mean), "std": list(data.std)},
        "data": data.info,
        "params": summary.params,
        "trainable_params": summary.trainable_params,
        "flops": summary.flops,
        "versions": versions(),
    }
    history: list[dict] = []

    def on_epoch(record) -> None:
        history.append(record.__dict__.copy())
        write_json(out / HISTORY_FILE, history)

    t0 = time.perf_counter()
    try:
        with test_split_forbidden("archsearch train"):
            result = fit(model, data, spec.train, device=dev, num_classes=spec.model.num_classes,
                         on_epoch=on_epoch, checkpoint=out / WEIGHTS_FILE, progress=progress)
    except TrainingError as e:
        write_json(out / METRICS_FILE, {**base, "stopped": e.reason, "error": str(e)})
        raise
    best = result.history[result.best_epoch - 1]
    metrics = {
        **base,
        "stopped": result.stopped,
        "device": result.device,
        "precision": result.precision,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "val": {"metric": spec.train.metric, "value": best.val_metric, "accuracy": best.val_acc, "loss": best.val_loss},
        "seconds": time.perf_counter() - t0,
        "seconds_per_epoch": sum(r.seconds for r in result.history) / len(result.history),
        "train_img_per_s": sum(r.img_per_s for r in result.history) / len(result.history),
    }
    write_json(out / METRICS_FILE, metrics)
    return RunResult(out, result, metrics)
