"""evaluate_run(run_dir, split): reload a run's best weights and measure them on val or test."""

from __future__ import annotations

from pathlib import Path

import torch

from archsearch.build import build_model
from archsearch.data import prepare_train_val
from archsearch.data.testsplit import load_test
from archsearch.errors import ArchsearchError
from archsearch.build.summary import latency
from archsearch.evaluate.metrics import classification_metrics
from archsearch.spec import load_spec
from archsearch.spec.root import Spec
from archsearch.train.loop import evaluate_source
from archsearch.train.precision import resolve_device
from archsearch.fs import read_json, write_json
from archsearch.train.run import METRICS_FILE, SPEC_FILE, WEIGHTS_FILE


def load_run(run_dir: Path, device: torch.device | str = "cpu") -> tuple[Spec, torch.nn.Module, dict]:
    """The resolved spec, the model with its best weights (eval mode) and metrics.json of a run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ArchsearchError(f"{run_dir}: no such run directory" + (" (a file)" if run_dir.exists() else ""))
    missing = [f for f in (SPEC_FILE, WEIGHTS_FILE, METRICS_FILE) if not (run_dir / f).is_file()]
    if missing:
        raise ArchsearchError(f"{run_dir} is not a finished run directory (missing {', '.join(missing)})")
    spec = load_spec(run_dir / SPEC_FILE, check_files=False)  # every weight is in best.pt: the pretrained
    model = build_model(spec, pretrained=False)              # file the run started from may be gone
    try:
        state = torch.load(run_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:
        raise ArchsearchError(f"{run_dir / WEIGHTS_FILE}: cannot load the weights: the file is damaged or does not "
                              f"hold this spec's state_dict ({type(e).__name__}: {e})") from None
    metrics = read_json(run_dir / METRICS_FILE, ("normalization", "classes"))
    return spec, model.to(device).eval(), metrics


def evaluate_run(run_dir: Path, split: str = "test", *, device: str | None = None,
                 data_dir: str | None = None, write: bool = True) -> dict:
    """Metrics of a run's best model on `split` (val | test); written to eval_<split>.json."""
    if split not in ("val", "test"):
        raise ArchsearchError(f"--split: expected val or test, got {split!r}")
    dev = resolve_device(device)
    spec, model, metrics = load_run(Path(run_dir), dev)
    norm = metrics["normalization"]
    classes = metrics["classes"]
    if split == "test":
        source, classes = load_test(spec.data, spec.model.input_shape, mean=norm["mean"], std=norm["std"],
                                    device=dev, data_dir=data_dir)
    else:
        source = prepare_train_val(spec.data, spec.model.input_shape,
                                   num_classes=spec.model.num_classes, device=dev, data_dir=data_dir).val
    ev = evaluate_source(model, source, spec.model.num_classes, spec.train.metric, dev)
    result = {
        "split": split,
        "fingerprint": source.fingerprint(),
        **classification_metrics(source.labels.numpy(), ev.predictions.numpy(), classes),
        "loss": ev.loss,
        "latency": latency(model, spec.model.input_shape, dev),
        "device": str(dev),
    }
    if write:
        write_json(Path(run_dir) / f"eval_{split}.json", result)
    return result
