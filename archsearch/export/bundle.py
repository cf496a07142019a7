"""Write the winner of `archsearch best` as a self-describing bundle, atomically.

A bundle is also a run directory (spec.yaml, best.pt, metrics.json), so `archsearch evaluate`,
`explain` and `train` accept it. It holds:

    spec.yaml        the resolved spec that was re-trained (no search syntax left)
    best.pt          the weights (a state_dict)
    model.ts         TorchScript (traced), parity-checked against the eager model
    model.onnx       ONNX (when onnx + onnxscript are installed), parity-checked with onnxruntime
    preprocess.json  class names, input shape, normalisation mean/std
    metrics.json     val + test metrics (per class), per-seed results, test-split fingerprint,
                     search budget, seeds, package versions, export parity
    confused.npz     test images of the most-confused class pairs (for the report)
    README.md        the model card
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import optuna
import torch
import yaml
from optuna.trial import TrialState

from archsearch.build import build_model
from archsearch.data.testsplit import load_test
from archsearch.errors import ArchsearchError
from archsearch.evaluate.best import Entry, Leaderboard, evaluate_model
from archsearch.export import formats
from archsearch.export.card import model_card
from archsearch.fs import ensure_writable_dir, write_json
from archsearch.spec import parse_spec
from archsearch.train.run import METRICS_FILE, SPEC_FILE, WEIGHTS_FILE, versions

PARITY_BATCH = 64
PREPROCESS_FILE = "preprocess.json"


def is_bundle(folder: Path) -> bool:
    """A folder `write_bundle` wrote (its metrics and preprocessing files are there)."""
    return (folder / METRICS_FILE).is_file() and (folder / PREPROCESS_FILE).is_file()


def check_target(out: Path, force: bool) -> None:
    """Refuse an existing target without `force`, and with it anything but an earlier bundle (--force
    replaces the whole folder: never a studies folder, a project, or one holding the working directory);
    check its parent is writable (before any work)."""
    if out.exists() and not out.is_dir():
        raise ArchsearchError(f"--export {out} exists and is not a folder")
    if out.exists() and not force:
        raise ArchsearchError(f"--export {out} exists; choose another folder or pass --force to replace it")
    if out.exists() and (not is_bundle(out) or Path.cwd().resolve().is_relative_to(out.resolve())):
        raise ArchsearchError(f"--export {out} exists and is not an export bundle: --force replaces only an "
                              "earlier bundle (the whole folder); choose another folder")
    ensure_writable_dir(out.resolve().parent, f"--export {out}")


def search_budget(study: optuna.Study) -> dict:
    trials = study.get_trials(deepcopy=False)
    states = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    seconds = sum(t.user_attrs.get("seconds", 0.0) for t in trials)
    return {"study": study.study_name, "trials": len(trials), **{k: v for k, v in states.items() if v},
            "trial_seconds": round(seconds, 1), "directions": [d.name.lower() for d in study.directions]}


def write_bundle(board: Leaderboard, study: optuna.Study, out: Path, *, force: bool = False,
                 data_dir: str | None = None, entry: Entry | None = None) -> Path:
    """Export `entry` (default: the leaderboard's winner) to `out`; returns `out`.

    The exported weights are the first seed's; their test metrics are measured again here on the
    CPU in fp32, the way the TorchScript/ONNX files will run, so the model card's number is the
    number a user reproduces with them."""
    check_target(out, force)
    entry = entry or board.entries[0]
    run = entry.runs[0]
    spec = parse_spec(entry.spec)
    model = build_model(spec, pretrained=False)  # every weight comes from the checkpoint
    model.load_state_dict(torch.load(board.folder / run.weights, map_location="cpu", weights_only=True))
    model = model.to(memory_format=torch.contiguous_format).eval()
    norm = entry.normalization
    source, classes = load_test(spec.data, spec.model.input_shape, mean=norm["mean"], std=norm["std"],
                                data_dir=data_dir)
    test = evaluate_model(model, spec, source, classes, torch.device("cpu"))
    predictions = np.asarray(test.pop("predictions"))
    if test["fingerprint"] != run.test_fingerprint:
        raise ArchsearchError(f"the test split changed since `archsearch best` measured trial #{entry.trial} "
                              f"(fingerprint {test['fingerprint'][:12]} != {run.test_fingerprint[:12]}); run best --redo")
    example = next(iter(source.batches(PARITY_BATCH)))[0].cpu()

    trial = study.trials[entry.trial]
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.resolve().parent))
    try:
        (tmp / SPEC_FILE).write_text(yaml.safe_dump(entry.spec, sort_keys=False, allow_unicode=True))
        torch.save(model.state_dict(), tmp / WEIGHTS_FILE)
        parity = {"torchscript": formats.torchscript(model, example, tmp / "model.ts"),
                  "onnx": formats.onnx(model, example, tmp / "model.onnx")}
        preprocess = {"classes": classes, "input_shape": list(spec.model.input_shape),
                      "mean": norm["mean"], "std": norm["std"],
                      "note": "x = (image / 255 - mean) / std per channel, float32 [B, C, H, W]"}
        if spec.data.dataset == "digits":  # the one source whose images are not 8-bit
            from archsearch.data.digits import PIXELS

            preprocess["pixels"] = PIXELS
        write_json(tmp / PREPROCESS_FILE, preprocess)
        _write_confused(tmp, source, test, predictions)
        metrics = {
            "spec_name": spec.name, "trial": entry.trial, "classes": classes, "normalization": norm,
            "params": entry.params, "flops": entry.flops, "latency_ms_batch1_cpu": entry.latency_ms,
            "val": {"metric": spec.train.metric, "value": entry.val_metric, "held_out": True,
                    "note": "from the search trial (train split only, validated on val)"},
            "test": test, "test_fingerprint": test["fingerprint"],
            "test_accuracy_over_seeds": {"mean": entry.accuracy.mean, "std": entry.accuracy.std,
                                         "ci95": [entry.accuracy.ci_low, entry.accuracy.ci_high],
                                         "n": entry.accuracy.n},
            "per_seed": [{"seed": r.seed, "accuracy": r.accuracy, "macro_f1": r.macro_f1, "epochs": r.epochs,
                          "seconds": r.seconds} for r in entry.runs],
            "export": {"seed": run.seed, "retrain": board.retrain, "epochs": run.epochs, "overrides": board.overrides,
                       "device_measured": "cpu", "precision": "fp32", "parity": parity},
            "data": run.data_info, "history": trial.user_attrs.get("history", []), "retrain_history": run.history,
            "search": search_budget(study), "leaderboard": board.as_json(), "versions": versions(),
            # a run directory's keys, so `archsearch evaluate` / `explain` read a bundle like a run
            "best_epoch": run.epochs,
        }
        write_json(tmp / METRICS_FILE, metrics)
        (tmp / "README.md").write_text(model_card(metrics, preprocess, parity))
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_confused(folder: Path, source, test: dict, predictions: np.ndarray) -> None:
    from archsearch.evaluate.confused import confused_examples, most_confused

    pairs = most_confused(test["confusion_matrix"], 5)
    if not pairs:
        return
    arrays = confused_examples(source, source.labels.numpy(), predictions, [(t, p) for t, p, _ in pairs])
    np.savez_compressed(folder / "confused.npz", **arrays)
