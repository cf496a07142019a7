"""Storage, sampler, pruner; create or resume a study and run trials until N have finished."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from archsearch.data.testsplit import test_split_forbidden
from archsearch.errors import ArchsearchError
from archsearch.fs import ensure_writable_dir
from archsearch.search.objective import FAILED_STATES, OK, Objective
from archsearch.spec.search import PrunerSpec, SamplerSpec, SearchSpec
from archsearch.spec.space import Space, check_space
from archsearch.train.precision import resolve_device

STUDIES_DIR = Path("studies")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DIRECTIONS = {"val_metric": "maximize", "params": "minimize", "flops": "minimize", "latency": "minimize"}

optuna.logging.set_verbosity(optuna.logging.ERROR)  # our live view reports each trial, fail reasons included


def default_storage(study: str, studies_dir: Path = STUDIES_DIR) -> str:
    return f"sqlite:///{studies_dir / f'{study}.db'}"


def make_sampler(spec: SamplerSpec, space: Space, multi: bool) -> optuna.samplers.BaseSampler:
    if spec.name == "tpe":
        return optuna.samplers.TPESampler(seed=spec.seed, multivariate=True, n_startup_trials=5)
    if spec.name == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    if spec.name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=spec.seed)
    if spec.name == "qmc":
        return optuna.samplers.QMCSampler(seed=spec.seed)
    if spec.name == "cmaes":
        import importlib.util

        if importlib.util.find_spec("cmaes") is None:
            raise ArchsearchError("search.sampler cmaes needs the `cmaes` package: pip install cmaes")
        return optuna.samplers.CmaEsSampler(seed=spec.seed)
    grid = {}
    for d in space.dims:
        if d.kind == "choice":
            grid[d.name] = list(range(len(d.choices))) if d.structured else list(d.choices)
        elif d.step:
            n = int(round((d.high - d.low) / d.step)) + 1
            grid[d.name] = [type(d.low)(d.low + i * d.step) if d.kind == "float" else int(d.low + i * d.step) for i in range(n)]
        else:
            raise ArchsearchError(f"search.sampler grid: {d.name} is a range without `step`; give a step or a choice")
    return optuna.samplers.GridSampler(grid, seed=spec.seed)


def make_pruner(spec: PrunerSpec) -> optuna.pruners.BasePruner:
    if spec.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials, n_warmup_steps=spec.warmup_epochs)
    if spec.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if spec.name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def _storage_error(url: str, e: Exception) -> ArchsearchError:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    if "upgrade" in text.lower() or "schema" in text.lower():
        return ArchsearchError(f"--storage {url}: the storage schema is older than this Optuna; run "
                               f"`optuna storage upgrade --storage {url}` first ({text})")
    return ArchsearchError(f"--storage {url}: cannot open the storage ({type(e).__name__}: {text})")


def open_study(name: str, storage: str, search: SearchSpec | None = None, space: Space | None = None,
               create: bool = True) -> optuna.Study:
    """Create or resume (load_if_exists) a study; unreachable storages give one clear error."""
    if storage.startswith("sqlite:///"):
        ensure_writable_dir(Path(storage.removeprefix("sqlite:///")).parent, f"--storage {storage}")
    try:
        if not create:
            return optuna.load_study(study_name=name, storage=storage)
        assert search is not None and space is not None
        multi = len(search.objectives) > 1
        return optuna.create_study(
            study_name=name, storage=storage, load_if_exists=True,
            directions=[DIRECTIONS[o] for o in search.objectives],
            sampler=make_sampler(search.sampler, space, multi), pruner=make_pruner(search.pruner),
        )
    except ArchsearchError:
        raise
    except KeyError:
        known = [s.study_name for s in _summaries_or_empty(storage)]
        raise ArchsearchError(f"--study {name}: no such study in {storage}; existing: {', '.join(known) or 'none'}") from None
    except (ImportError, ModuleNotFoundError) as e:
        raise ArchsearchError(f"--storage {storage}: a database driver is missing ({e})") from None
    except Exception as e:  # sqlalchemy OperationalError, ArgumentError, ...
        raise _storage_error(storage, e) from None


def _summaries_or_empty(storage: str) -> list:
    try:
        return optuna.get_all_study_summaries(storage=storage)
    except Exception:
        return []


def study_summaries(storage: str) -> list:
    try:
        return optuna.get_all_study_summaries(storage=storage, include_best_trial=True)
    except Exception as e:
        raise _storage_error(storage, e) from None


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


@dataclass
class SearchResult:
    study: optuna.Study
    finished: int
    stopped: str  # trials | timeout | failures | interrupted


class _LiveView:
    """Prints one line a trial: n/N, outcome, best so far, counts, ETA."""

    def __init__(self, study: optuna.Study, target: int, echo) -> None:
        self.study, self.target, self.echo = study, target, echo
        self.t0, self.start_finished = time.perf_counter(), finished_count(study)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False)
        n_done = sum(t.state in FINISHED for t in trials)
        pruned = sum(t.state == TrialState.PRUNED for t in trials)
        failed = sum(t.state == TrialState.FAIL or t.user_attrs.get("status") in FAILED_STATES for t in trials)
        ok = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("status") == OK]
        best = max(ok, key=lambda t: t.user_attrs["val_metric"], default=None)
        rate = (time.perf_counter() - self.t0) / max(1, n_done - self.start_finished)
        eta = rate * max(0, self.target - n_done)
        status = trial.user_attrs.get("status", trial.state.name.lower())
        val = trial.user_attrs.get("val_metric")
        reason = trial.user_attrs.get("reason") or trial.system_attrs.get("fail_reason", "")
        what = f"val {val:.4f}" if val is not None else reason.strip().splitlines()[-1][:70] if reason else ""
        best_s = f"best {best.user_attrs['val_metric']:.4f} (#{best.number})" if best else "best -"
        self.echo(
            f"trial {trial.number:>3} [{n_done}/{self.target}] {status:<11} {what:<24} "
            f"params {trial.user_attrs.get('params', 0):>10,} | {best_s} | {pruned} pruned, {failed} failed | "
            f"ETA {eta / 60:.1f} min"
        )


def run_search(space: Space, search: SearchSpec, *, study_name: str, storage: str | None = None,
               trials: int | None = None, timeout: float | None = None, device: str | None = None,
               data_dir: str | None = None, echo=print, progress: bool = False) -> SearchResult:
    """Check the space, open the study, run until `trials` trials have finished (study-wide).

    `progress` shows the running trial's epoch/batch progress bar (on stderr) between the
    one-line-a-trial reports."""
    checked, problems = check_space(space)
    if problems:
        from archsearch.errors import SpecError

        raise SpecError(problems, space.source)
    storage = storage or search.storage or default_storage(study_name)
    target = trials or search.trials
    timeout = timeout if timeout is not None else search.timeout
    dev = resolve_device(device)
    study = open_study(study_name, storage, search, space)
    study.set_user_attr("space", space.source or "")
    study_dir = STUDIES_DIR / study_name
    ensure_writable_dir(study_dir, "checkpoints of the top trials")
    done = finished_count(study)
    echo(f"study {study_name} on {storage}: {done} finished trial(s), target {target}; "
         f"{len({d.name for d in space.dims})} parameters, {checked} extreme specs checked; device {dev}")
    if done >= target:
        return SearchResult(study, done, "trials")
    objective = Objective(space, study_dir, device=dev, objectives=list(search.objectives),
                          keep_top_k=search.keep_top_k, data_dir=data_dir, pruner=search.pruner,
                          progress=progress)
    stop_reason = {"why": "trials"}
    streak = {"n": 0}

    def stop_on_target(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if finished_count(study) >= target:
            study.stop()

    def stop_on_failures(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        bad = trial.state == TrialState.FAIL or trial.user_attrs.get("status") in FAILED_STATES
        streak["n"] = streak["n"] + 1 if bad else 0
        if streak["n"] >= search.max_consecutive_failures:
            stop_reason["why"] = "failures"
            study.stop()

    try:
        with test_split_forbidden(f"archsearch run (study {study_name})"):
            study.optimize(objective, timeout=timeout, callbacks=[_LiveView(study, target, echo), stop_on_failures,
                                                                  stop_on_target], gc_after_trial=True)
    except KeyboardInterrupt:
        stop_reason["why"] = "interrupted"
    if timeout is not None and stop_reason["why"] == "trials" and finished_count(study) < target:
        stop_reason["why"] = "timeout"
    if stop_reason["why"] == "failures":
        raise ArchsearchError(
            f"stopped after {search.max_consecutive_failures} consecutive failed trials "
            f"(search.max_consecutive_failures); the last said: "
            f"{study.trials[-1].user_attrs.get('reason', 'see the trial')}. Fix the space and run again."
        )
    return SearchResult(study, finished_count(study), stop_reason["why"])


def best_ok_trials(study: optuna.Study, k: int = 1) -> list[optuna.trial.FrozenTrial]:
    ok = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.user_attrs.get("status") == OK]
    return sorted(ok, key=lambda t: -t.user_attrs.get("val_metric", -math.inf))[:k]
