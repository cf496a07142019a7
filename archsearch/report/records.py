"""A study → plain records: one row per trial, objective names, pruning epochs, counts."""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from archsearch.search.study import OK


# user_attrs key → label, for naming the objectives of a study that has no metric names
OBJECTIVE_ATTRS = {"val_metric": "val metric", "params": "params", "flops": "FLOPs", "latency_ms": "latency (ms)"}


class TrialRow(NamedTuple):
    """What the trials table shows about one trial."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    status: str  # the objective's user_attrs["status"] (ok, pruned, over_budget, ...) or the state
    values: tuple[float, ...] | None
    val_metric: float | None
    epochs: int  # epochs trained (len of the history)
    hyperparams: dict
    model_params: int | None
    seconds: float | None
    reason: str


def trial_row(t: FrozenTrial) -> TrialRow:
    ua = t.user_attrs
    seconds = ua.get("seconds")
    if seconds is None and t.datetime_start is not None and t.datetime_complete is not None:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds()
    reason = ua.get("reason") or t.system_attrs.get("fail_reason") or ""
    if t.state == TrialState.PRUNED and not reason and ua.get("history"):
        last = ua["history"][-1]
        reason = f"pruned at epoch {last['epoch']} (val {last['val_metric']:.4f})"
    if "duplicate_of" in ua:
        reason = f"same spec as trial {ua['duplicate_of']}; its result reused"
    return TrialRow(
        number=t.number,
        state=t.state.name,
        status=ua.get("status", t.state.name.lower()),
        values=tuple(t.values) if t.values is not None else None,
        val_metric=ua.get("val_metric"),
        epochs=len(ua.get("history") or []),
        hyperparams=dict(t.params),
        model_params=ua.get("params"),
        seconds=seconds,
        reason=str(reason).strip().splitlines()[-1] if reason else "",
    )


def trial_rows(study: optuna.Study) -> list[TrialRow]:
    """One row per trial, in trial-number order."""
    return [trial_row(t) for t in study.get_trials(deepcopy=False)]


def is_ok(t: FrozenTrial) -> bool:
    """A trial that trained to the end (not over budget, not failed)."""
    return t.state == TrialState.COMPLETE and t.user_attrs.get("status", OK) == OK


def ok_trials(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if is_ok(t)]


def status_counts(study: optuna.Study) -> dict[str, int]:
    """How many trials ended in each status, most frequent first."""
    return dict(Counter(trial_row(t).status for t in study.get_trials(deepcopy=False)).most_common())


def metric_name(study: optuna.Study) -> str:
    """The validation metric the trials were selected by (from a resolved spec), e.g. 'val accuracy'."""
    for t in study.get_trials(deepcopy=False):
        spec = t.user_attrs.get("spec")
        if isinstance(spec, dict):
            return f"val {spec.get('train', {}).get('metric', 'metric')}"
    return "val metric"


def objective_names(study: optuna.Study) -> list[str]:
    """One label per objective: the study's metric names, else read off the user attrs of a trial
    whose values equal them (archsearch objectives are val_metric, params, flops, latency)."""
    n = len(study.directions)
    if study.metric_names is not None:
        return list(study.metric_names)
    names = [metric_name(study)] if n == 1 else [f"objective {i}" for i in range(n)]
    for t in ok_trials(study):
        for i, v in enumerate(t.values):
            for key, label in OBJECTIVE_ATTRS.items():
                a = t.user_attrs.get(key)
                if isinstance(a, (int, float)) and math.isclose(float(a), v, rel_tol=1e-9, abs_tol=1e-12):
                    names[i] = metric_name(study) if key == "val_metric" else label
                    break
        break
    return names


def pruned_epochs(study: optuna.Study) -> dict[int, int]:
    """Pruned trial number → the last epoch it reported (where it was stopped)."""
    out = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
        steps = list(t.intermediate_values) or [r["epoch"] for r in t.user_attrs.get("history") or []]
        if steps:
            out[t.number] = max(steps)
    return out


def val_curves(study: optuna.Study) -> dict[int, list[tuple[int, float]]]:
    """Trial number → (epoch, val metric) from the recorded histories (for multi-objective studies,
    which keep no intermediate values in Optuna)."""
    out = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)):
        history = t.user_attrs.get("history") or []
        if history:
            out[t.number] = [(int(r["epoch"]), float(r["val_metric"])) for r in history]
    return out


def varying_params(trials: list[FrozenTrial]) -> list[str]:
    """Parameters that take at least two values among `trials` (importances need one)."""
    seen: dict[str, set] = {}
    for t in trials:
        for k, v in t.params.items():
            seen.setdefault(k, set()).add(repr(v))
    return sorted(k for k, vs in seen.items() if len(vs) >= 2)
