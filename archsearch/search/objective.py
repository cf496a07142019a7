"""One trial: resolve → budget check → build → fit; each epoch reports to Optuna (pruning).

Trials that cannot train (over budget, invalid resolved spec, NaN loss, CUDA OOM) complete with
the worst value and a positive constraint violation, so constrained samplers learn to avoid them
instead of never hearing of them; `user_attrs["status"]` says what happened and `reason` why.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import torch

from archsearch.build import build_model, summarize
from archsearch.build.summary import latency
from archsearch.data import TrainVal, prepare_train_val
from archsearch.errors import ArchsearchError, DataError, SpecError, TrainingError
from archsearch.search.artifacts import TrialArtifacts
from archsearch.search.budget import check_budgets
from archsearch.search.resolve import resolve_trial
from archsearch.search.study import OK
from archsearch.spec.root import Spec
from archsearch.spec.search import PrunerSpec
from archsearch.spec.space import Space
from archsearch.train.loop import fit, load_epoch_state, seed_everything



CONSTRAINT = "feasibility"  # Optuna constraint: > 0 means infeasible (see the module docstring)


class Objective:
    """Callable objective for study.optimize over a Space."""

    def __init__(self, space: Space, study_dir: Path, *, device: torch.device, objectives: list[str],
                 keep_top_k: int = 3, data_dir: str | None = None, pruner: PrunerSpec | None = None,
                 on_epoch: Callable[[optuna.Trial, Any], None] | None = None, progress: bool = False,
                 target: int | None = None, worker: str = "") -> None:
        self.progress, self.target, self.worker = progress, target, worker
        self.space, self.study_dir, self.device = space, study_dir, device
        self.pruner = pruner or PrunerSpec()
        self.objectives, self.keep_top_k, self.data_dir = objectives, keep_top_k, data_dir
        self.on_epoch_hook = on_epoch
        self._data: dict[str, TrainVal] = {}
        self.artifacts = TrialArtifacts(study_dir)  # shown by optuna-dashboard

    # -- helpers -------------------------------------------------------------------------------
    def data_for(self, spec: Spec) -> TrainVal:
        """Train/val data, prepared once per distinct data section (the test split never)."""
        key = json.dumps([spec.data.model_dump(mode="json"), list(spec.model.input_shape)], sort_keys=True)
        if key not in self._data:
            if len(self._data) >= 2:
                self._data.pop(next(iter(self._data)))
            self._data[key] = prepare_train_val(spec.data, spec.model.input_shape,
                                                num_classes=spec.model.num_classes, device=self.device,
                                                data_dir=self.data_dir)
        return self._data[key]

    def _worst(self, params: int = 0, flops: int = 0) -> float | tuple[float, ...]:
        values = {"val_metric": 0.0, "params": float(params), "flops": float(flops), "latency": 1e9}
        out = tuple(values[o] for o in self.objectives)
        return out[0] if len(out) == 1 else out

    def _fail(self, trial: optuna.Trial, status: str, reason: str, excess: float = 1.0, **kw: Any):
        trial.set_user_attr("status", status)
        trial.set_user_attr("reason", reason)
        trial.set_constraint(CONSTRAINT, max(excess, 1e-6))
        return self._worst(**kw)

    # -- the trial -----------------------------------------------------------------------------
    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        try:
            return self._run(trial)
        except ArchsearchError as e:  # a user error (data, weights file, spec) ends the search; the trial says why
            trial.set_user_attr("status", "error")
            trial.set_user_attr("reason", str(e))
            raise
        finally:  # a finished, pruned, failed or interrupted trial needs no resume point; a killed one keeps it
            original = retried_from(trial)
            (self.study_dir / "resume" / f"trial_{original if original is not None else trial.number}.pt").unlink(
                missing_ok=True)

    def _run(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        t0 = time.perf_counter()
        trial.set_user_attr("worker", self.worker)
        if self._surplus(trial):
            trial.set_user_attr("status", "surplus")
            raise Surplus(f"trial {trial.number} started after the study's {self.target} trials were claimed")
        try:
            spec = resolve_trial(self.space, trial)
        except SpecError as e:
            return self._fail(trial, "invalid_spec", "; ".join(str(p) for p in e.problems))
        spec_json = spec.model_dump(mode="json")
        trial.set_user_attr("spec", spec_json)
        self.artifacts.spec(trial, spec_json)
        trial.set_user_attr("device", str(self.device))
        twin = self._trained_twin(trial, spec_json)
        if twin is not None:  # the same network and training already ran: its result is known
            for key in ("params", "trainable_params", "flops", "memory_bytes", "val_metric", "best_epoch", "history"):
                if key in twin.user_attrs:
                    trial.set_user_attr(key, twin.user_attrs[key])
            trial.set_user_attr("status", OK)
            trial.set_user_attr("duplicate_of", twin.number)
            trial.set_constraint(CONSTRAINT, 0.0)
            return twin.values[0] if len(twin.values) == 1 else tuple(twin.values)
        seed_everything(spec.train.seed, spec.train.deterministic)
        model = build_model(spec)
        summary = summarize(model, spec.model.input_shape)
        trial.set_user_attr("params", summary.params)
        trial.set_user_attr("trainable_params", summary.trainable_params)
        trial.set_user_attr("flops", summary.flops)
        budget = check_budgets(spec, summary, model, self.device)
        trial.set_user_attr("memory_bytes", budget.memory_bytes)
        trial.set_user_attr("memory_source", budget.memory_source)
        trial.set_user_attr("budget_seconds", time.perf_counter() - t0)
        if budget.violations:
            return self._fail(trial, "over_budget", "; ".join(budget.violations), budget.excess,
                              params=summary.params, flops=summary.flops)
        try:
            data = self.data_for(spec)
        except DataError as e:  # a searched data section this trial's choices make impossible
            return self._fail(trial, "data_error", str(e), params=summary.params, flops=summary.flops)
        history: list[dict] = []
        multi = len(self.objectives) > 1
        max_epoch_s = spec.search.budgets.max_epoch_seconds

        def on_epoch(record) -> None:
            history.append(record.__dict__.copy())
            trial.set_user_attr("history", history)
            if not multi:  # Optuna has no intermediate values for multi-objective studies
                trial.report(record.val_metric, record.epoch)
            if self.on_epoch_hook is not None:
                self.on_epoch_hook(trial, record)
            if max_epoch_s is not None and record.seconds > max_epoch_s:
                raise _OverTime(f"epoch {record.epoch} took {record.seconds:.1f} s > max_epoch_seconds {max_epoch_s}")
            if multi:  # (a finished last epoch is a result, never pruned)
                prune = record.epoch < spec.train.epochs and self._below_median(trial, record.epoch, record.val_metric)
            else:
                prune = trial.should_prune()
            if prune:
                trial.set_user_attr("status", "pruned")
                trial.set_constraint(CONSTRAINT, 0.0)
                raise optuna.TrialPruned(f"pruned at epoch {record.epoch} (val {record.val_metric:.4f})")

        resume_file, start = self._resume_point(trial, model)
        if start is not None:
            history.extend(start["history"])
            trial.set_user_attr("resumed_from_epoch", start["epoch"])
        oom = False
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
        try:
            result = fit(model, data, spec.train, device=self.device, num_classes=spec.model.num_classes,
                         on_epoch=on_epoch, progress=self.progress, epoch_checkpoint=resume_file, resume_from=start)
        except TrainingError as e:
            return self._fail(trial, e.reason, str(e), params=summary.params, flops=summary.flops)
        except _OverTime as e:
            return self._fail(trial, "over_budget", str(e), params=summary.params, flops=summary.flops)
        except torch.OutOfMemoryError as e:
            oom, reason = True, str(e).splitlines()[0]
        if oom:  # free outside the except block: the traceback holds references to the tensors
            del model
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return self._fail(trial, "cuda_oom", reason, params=summary.params, flops=summary.flops)
        if self.device.type == "cuda":  # what training really used, beside the pre-train measurement
            trial.set_user_attr("train_peak_bytes", torch.cuda.max_memory_allocated(self.device) - base)
        trial.set_user_attr("status", OK)
        trial.set_constraint(CONSTRAINT, 0.0)
        trial.set_user_attr("val_metric", result.best_metric)
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("precision", result.precision)
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        self._keep_checkpoint(trial, result.best_state)
        self.artifacts.confusion(trial, model, data, spec, self.device, result.precision, result.best_epoch)
        values = {"val_metric": result.best_metric, "params": float(summary.params), "flops": float(summary.flops)}
        if "latency" in self.objectives:
            values["latency"] = latency(model, spec.model.input_shape, self.device, batch_sizes=(1,))["ms_per_image_batch1"]
            trial.set_user_attr("latency_ms", values["latency"])
        out = tuple(values[o] for o in self.objectives)
        return out[0] if len(out) == 1 else out

    def _resume_point(self, trial: optuna.Trial, model: torch.nn.Module) -> tuple[Path, dict | None]:
        """Where this trial writes its epoch checkpoints, and, for the retry of a trial whose worker
        died, the state to continue from (None when there is none or it does not fit the model)."""
        original = retried_from(trial)
        folder = self.study_dir / "resume"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"trial_{original if original is not None else trial.number}.pt"
        if original is None:
            return path, None
        state = load_epoch_state(path)
        if state is None:
            return path, None
        try:
            model.load_state_dict(state["model"])  # the same network? (params are the same; check anyway)
        except RuntimeError:
            return path, None
        return path, state

    def _surplus(self, trial: optuna.Trial) -> bool:
        """Whether `target` earlier trials already finished, run or wait (a race between workers
        started this one too many)."""
        if self.target is None:
            return False
        live = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING,
                optuna.trial.TrialState.WAITING)
        earlier = [t for t in trial.study.get_trials(deepcopy=False, states=live) if t.number < trial.number]
        return len(earlier) >= self.target

    @staticmethod
    def _trained_twin(trial: optuna.Trial, spec_json: dict) -> optuna.trial.FrozenTrial | None:
        """A finished, successful trial with exactly this resolved spec (samplers re-propose
        categorical points); its values are reused instead of training again."""
        for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if t.user_attrs.get("status") == OK and "duplicate_of" not in t.user_attrs and t.user_attrs.get("spec") == spec_json:
                return t
        return None

    def _below_median(self, trial: optuna.Trial, epoch: int, value: float) -> bool:
        """Median pruning on the accuracy curve alone, for multi-objective studies (where Optuna's
        pruners do not apply, optuna#3450): compare with other trials' val metric at this epoch."""
        if self.pruner.name == "none" or epoch <= self.pruner.warmup_epochs:
            return False
        others = []
        for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                                optuna.trial.TrialState.PRUNED)):
            history = t.user_attrs.get("history") or []
            if len(history) >= epoch:
                others.append(history[epoch - 1]["val_metric"])
        if len(others) < max(1, self.pruner.startup_trials):
            return False
        others.sort()
        mid = len(others) // 2
        median = others[mid] if len(others) % 2 else 0.5 * (others[mid - 1] + others[mid])
        return value < median

    def _keep_checkpoint(self, trial: optuna.Trial, state: dict) -> None:
        """Keep weights only for the current top-K trials (by val metric) in studies/<study>/."""
        self.study_dir.mkdir(parents=True, exist_ok=True)
        metric = trial.user_attrs.get("val_metric", 0.0)
        done = [t for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if t.user_attrs.get("status") == OK]
        ranked = sorted([(t.user_attrs.get("val_metric", 0.0), t.number) for t in done] + [(metric, trial.number)],
                        reverse=True)
        keep = {n for _, n in ranked[: self.keep_top_k]}
        if trial.number in keep:
            tmp = self.study_dir / f".trial_{trial.number}.pt.tmp"
            torch.save(state, tmp)
            tmp.replace(self.study_dir / f"trial_{trial.number}.pt")
        for f in self.study_dir.glob("trial_*.pt"):
            n = int(f.stem.split("_")[1])
            if n not in keep:
                f.unlink(missing_ok=True)


def retried_from(trial: optuna.Trial) -> int | None:
    """The number of the trial this one retries (its worker died), from Optuna's retry callback."""
    return trial.study._storage.get_trial_system_attrs(trial._trial_id).get("failed_trial")


class _OverTime(Exception):
    pass


class Surplus(Exception):
    """A trial started in a race after the study-wide target was already claimed."""
