"""Training: fit(model, data, TrainSpec, on_epoch=callback) → history. No Optuna here."""

from archsearch.train.loop import EpochRecord, Evaluation, FitResult, evaluate_source, fit, seed_everything
from archsearch.train.precision import resolve_device, resolve_precision

__all__ = [
    "EpochRecord",
    "Evaluation",
    "FitResult",
    "evaluate_source",
    "fit",
    "resolve_device",
    "resolve_precision",
    "seed_everything",
]
