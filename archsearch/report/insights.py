"""What a study says about its choices, in numbers: parameter importances, and for each value of
each discrete parameter how the trials that took it did.

Pruned trials are most of a pruned search, so a per-value comparison of finished trials alone
would only see the values the pruner let through. Each value is therefore shown twice: at an
early epoch that every trial which trained reached (default 1: all trials, pruned ones included,
on an equal footing) and at the end (the trials that trained to the end).
"""

from __future__ import annotations

import math
import statistics
import warnings
from typing import NamedTuple

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from archsearch.errors import ArchsearchError
from archsearch.report.records import is_ok, varying_params

MAX_DISCRETE = 6  # an int parameter with at most this many values is compared value by value
LABEL_CHARS = 30  # the width of the option column


class ChoiceRow(NamedTuple):
    param: str
    value: str
    early_n: int  # trials with this value that reached the early epoch
    early_median: float | None
    early_best: float | None
    final_n: int  # trials with this value that trained to the end
    final_median: float | None
    final_best: float | None


def _trained(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that trained at least one epoch, each once (a twin that reused an earlier result is
    left out)."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            if t.user_attrs.get("history") and "duplicate_of" not in t.user_attrs]


def longest_run(study: optuna.Study) -> int:
    """The most epochs any trial of the study trained (0: none trained)."""
    return max((int(r["epoch"]) for t in _trained(study) for r in t.user_attrs["history"]), default=0)


def val_at(t: FrozenTrial, epoch: int) -> float | None:
    for r in t.user_attrs.get("history") or []:
        if int(r["epoch"]) == epoch:
            return float(r["val_metric"])
    return None


def importances(study: optuna.Study, index: int = 0) -> dict[str, float]:
    """Optuna's default importance evaluator (PED-ANOVA in Optuna 5) for the index-th objective
    over the trials that trained to the end; {} when fewer than two did or nothing varies."""
    ok = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if is_ok(t)]
    if len(ok) < 2 or not varying_params(ok):
        return {}
    sign = -1.0 if study.directions[index] == StudyDirection.MAXIMIZE else 1.0

    def target(t: FrozenTrial) -> float:  # lower is better for the evaluator's target
        return sign * t.values[index] if is_ok(t) else math.nan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dict(optuna.importance.get_param_importances(study, target=target))


def _discrete(trials: list[FrozenTrial]) -> list[str]:
    params: dict[str, set] = {}
    for t in trials:
        for k, v in t.params.items():
            params.setdefault(k, set()).add(v)
    return sorted(k for k, vs in params.items()
                  if len(vs) >= 2 and all(isinstance(v, (str, bool)) or (isinstance(v, int) and len(vs) <= MAX_DISCRETE)
                                          for v in vs))


def option_label(option: object) -> str:
    """A short name for a choice option: `[{type: dropout2d, p: 0.1}]` → 'dropout2d(p=0.1)',
    `[]` → 'none'."""
    if isinstance(option, dict):
        kind = option.get("type", "")
        args = ", ".join(f"{k}={option_label(v)}" for k, v in option.items() if k not in ("type", "layers"))
        inner = f"[{option_label(option['layers'])}]" if "layers" in option else ""
        text = f"{kind}({args})" if args else str(kind)
        return text + inner
    if isinstance(option, list):
        return ", ".join(option_label(o) for o in option) if option else "none"
    return str(option)


def short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


def option_labels(study: optuna.Study) -> dict[str, tuple[str, ...]]:
    """Parameter name → a label per option, for the choices Optuna stores by index (lists of
    layers, augmentation lists), read from the space stored with the study."""
    from archsearch.spec.space import space_from_data

    rec = study.user_attrs.get("space")
    if not isinstance(rec, dict) or "data" not in rec:
        return {}
    try:
        space = space_from_data(rec["data"], rec.get("source", ""), rec.get("base_dir", "."))
    except ArchsearchError:
        return {}
    out = {}
    for d in space.dims:
        if d.structured:
            out[d.name] = tuple(short(option_label(c)) for c in d.choices)
    return out


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    return (statistics.median(values), max(values)) if values else (None, None)


def choice_rows(study: optuna.Study, epoch: int = 1) -> list[ChoiceRow]:
    """One row per value of each discrete parameter that varies (categorical, or int with few
    values): val metric at `epoch` over every trial that reached it, and at the end over the trials
    that trained to the end. Options chosen by index (layer lists) are named by option_labels."""
    trained = _trained(study)
    labels = option_labels(study)
    rows = []
    for param in _discrete(trained):
        values = sorted({t.params[param] for t in trained if param in t.params}, key=lambda v: (type(v).__name__, v))
        for value in values:
            took = [t for t in trained if t.params.get(param) == value]
            early = [v for v in (val_at(t, epoch) for t in took) if v is not None]
            final = [float(t.user_attrs["val_metric"]) for t in took if is_ok(t) and "val_metric" in t.user_attrs]
            names = labels.get(param, ())
            label = names[value] if isinstance(value, int) and 0 <= value < len(names) else str(value)
            rows.append(ChoiceRow(param, label, len(early), *_stats(early), len(final), *_stats(final)))
    return rows
