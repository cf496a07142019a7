"""`archsearch reproduce BUNDLE`: train the bundle's spec again as the export did, compare on test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from archsearch.build import build_model
from archsearch.data import prepare_train_val
from archsearch.data.testsplit import load_test
from archsearch.errors import ArchsearchError
from archsearch.evaluate.best import evaluate_model
from archsearch.fs import read_json
from archsearch.spec import load_spec
from archsearch.train.loop import fit, seed_everything
from archsearch.train.precision import resolve_device
from archsearch.train.run import METRICS_FILE, SPEC_FILE


@dataclass
class Reproduction:
    expected: float
    got: float
    fingerprint_match: bool
    tolerance: float
    seconds: float

    @property
    def diff(self) -> float:
        return self.got - self.expected

    @property
    def ok(self) -> bool:
        return self.fingerprint_match and abs(self.diff) <= self.tolerance


def reproduce(bundle: Path, *, device: str | None = None, data_dir: str | None = None, tolerance: float = 0.005,
              progress: bool = False) -> Reproduction:
    """Re-train `bundle`'s spec (train + val for a `full` export; the train split with the best
    epoch on val for a `reuse` export), evaluate on the test split (CPU, fp32), compare."""
    if not bundle.is_dir():
        raise ArchsearchError(f"{bundle}: no such bundle folder")
    missing = [f for f in (SPEC_FILE, METRICS_FILE) if not (bundle / f).is_file()]
    if missing:
        raise ArchsearchError(f"{bundle} is not an export bundle (missing {', '.join(missing)})")
    metrics = read_json(bundle / METRICS_FILE)
    if "export" not in metrics:
        raise ArchsearchError(f"{bundle} is a run directory, not an export bundle: use `archsearch train` on its spec")
    if "normalization" not in metrics or not isinstance(metrics["export"], dict) or "retrain" not in metrics["export"]:
        raise ArchsearchError(f"{bundle / METRICS_FILE}: lacks normalization or export.retrain (damaged?)")
    spec = load_spec(bundle / SPEC_FILE)
    full = metrics["export"]["retrain"] == "full"
    dev = resolve_device(device)
    seed_everything(spec.train.seed, spec.train.deterministic)
    data = prepare_train_val(spec.data, spec.model.input_shape,
                             num_classes=spec.model.num_classes, device=dev, data_dir=data_dir, merge_val=full)
    model = build_model(spec)
    result = fit(model, data, spec.train, device=dev, num_classes=spec.model.num_classes, progress=progress,
                 keep="last" if full else "best")
    model = model.to("cpu", memory_format=torch.contiguous_format).eval()
    norm = metrics["normalization"]
    source, classes = load_test(spec.data, spec.model.input_shape, mean=norm["mean"], std=norm["std"], data_dir=data_dir)
    test = evaluate_model(model, spec, source, classes, torch.device("cpu"))
    return Reproduction(expected=metrics["test"]["accuracy"], got=test["accuracy"],
                        fingerprint_match=test["fingerprint"] == metrics["test_fingerprint"], tolerance=tolerance,
                        seconds=result.seconds)
