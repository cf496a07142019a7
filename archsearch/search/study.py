"""A study's storage, sampler and pruner; open, read and count a study; its studies/<name>/ folder.

Reading a study (`status`, `insights`, `best`, `report`, the dashboard) needs nothing of the
trainer: this module imports optuna and the spec alone, not torch. Running trials: search/run.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
from optuna.trial import TrialState

from archsearch.errors import ArchsearchError
from archsearch.fs import ensure_writable_dir, read_json, write_json
from archsearch.search.storage import STUDIES_DIR, check_exists, make_storage, sqlite_file, storage_error
from archsearch.spec.search import PrunerSpec, SamplerSpec, SearchSpec
from archsearch.spec.space import Space

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
OK = "ok"  # a trial's user attr `status` when it trained to the end
FAILED_STATES = ("over_budget", "invalid_spec", "data_error", "nan_loss", "cuda_oom")
DIRECTIONS = {"val_metric": "maximize", "params": "minimize", "flops": "minimize", "latency": "minimize"}

optuna.logging.set_verbosity(optuna.logging.ERROR)  # our live view reports each trial, fail reasons included


def make_sampler(spec: SamplerSpec, space: Space, multi: bool, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler. It is made anew for every trial (in the worker or in a trial process) with
    `seed_offset` = the trials already in the study, so a seeded search draws the same sequence
    either way, and a worker joining later does not repeat the first worker's draws. Not the grid:
    GridSampler shuffles its points by the seed and a trial's `grid_id` indexes that order, so
    every process must shuffle alike (an offset seed sent grid_id k to another point: repeats)."""
    seed = None if spec.seed is None else spec.seed + seed_offset
    if spec.name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=5)
    if spec.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if spec.name == "qmc":  # a Sobol sequence: its position comes from the storage, the seed scrambles it
        return optuna.samplers.QMCSampler(seed=spec.seed)
    if spec.name == "cmaes":
        import importlib.util

        if importlib.util.find_spec("cmaes") is None:
            raise ArchsearchError("search.sampler cmaes needs the `cmaes` package: pip install cmaes")
        return optuna.samplers.CmaEsSampler(seed=seed)
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


def open_study(name: str, storage: str, search: SearchSpec | None = None, space: Space | None = None,
               create: bool = True, seed_offset: int = 0) -> optuna.Study:
    """Create or resume (load_if_exists) a study with heartbeats (see storage.py), or, with
    create=False, load an existing one for reading; unreachable storages give one clear error."""
    try:
        if not create:
            path = sqlite_file(storage)  # opening a missing file would create an empty one
            if path is not None:
                check_exists(storage, f"--study {name}", path.parent)
            return optuna.load_study(study_name=name, storage=make_storage(storage, heartbeat=False))
        assert search is not None and space is not None
        hb = search.heartbeat
        store = make_storage(storage, heartbeat_interval=hb.interval, grace_period=hb.grace, max_retry=hb.max_retry)
        multi = len(search.objectives) > 1
        return optuna.create_study(
            study_name=name, storage=store, load_if_exists=True,
            directions=[DIRECTIONS[o] for o in search.objectives],
            sampler=make_sampler(search.sampler, space, multi, seed_offset), pruner=make_pruner(search.pruner),
        )
    except ArchsearchError:
        raise
    except KeyError:
        known = [s.study_name for s in _summaries_or_empty(storage)]
        raise ArchsearchError(f"--study {name}: no such study in {storage}; existing: {', '.join(known) or 'none'}") from None
    except (ImportError, ModuleNotFoundError) as e:
        raise ArchsearchError(f"--storage {storage}: a database driver is missing ({e})") from None
    except Exception as e:  # sqlalchemy OperationalError, ArgumentError, ...
        raise storage_error(storage, e) from None


def _summaries_or_empty(storage: str) -> list:
    try:
        return optuna.get_all_study_summaries(storage=storage)
    except Exception:
        return []


def study_summaries(storage: str) -> list:
    try:
        return optuna.get_all_study_summaries(storage=storage, include_best_trial=True)
    except Exception as e:
        raise storage_error(storage, e) from None


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))

def space_record(space: Space) -> dict:
    """What a worker needs to rebuild the space anywhere: stored in the study's user attrs."""
    return {"data": space.data, "source": space.source or "", "base_dir": str(space.base_dir or ".")}


def space_from_study(study: optuna.Study) -> Space:
    """The space a study was created with (`archsearch worker` joins without the YAML file)."""
    from archsearch.spec.space import space_from_data

    rec = study.user_attrs.get("space")
    if not isinstance(rec, dict) or "data" not in rec:
        raise ArchsearchError(f"study {study.study_name} has no stored space (created by an older archsearch or "
                              "by hand); run `archsearch run SPACE --study NAME` instead")
    return space_from_data(rec["data"], rec["source"], rec["base_dir"])


def host_name() -> str:
    import socket

    return socket.gethostname()


def recover_dead_trials(study: optuna.Study, echo=print) -> int:
    """Fail RUNNING trials whose worker is gone, and re-queue them (once, by default):
    heartbeat-stale ones (any machine, after the grace period) and, at once, those of a dead
    process on this machine (trial user attr `worker` = host:pid)."""
    import os
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
        optuna.storages.fail_stale_trials(study)
    host = host_name()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        where = str(t.user_attrs.get("worker", ""))
        if not where.startswith(host + ":"):
            continue
        pid = int(where.rsplit(":", 1)[1])
        try:
            os.kill(pid, 0)
            continue  # alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        fail_and_retry(study, t, f"worker {where} died")
    after = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number not in before]
    n = len(after)
    if n:
        echo(f"failed {n} trial(s) of dead workers ({', '.join(f'#{t.number}' for t in after)}); "
             "re-queued to resume from their last epoch checkpoint")
    return n


def fail_and_retry(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str) -> bool:
    """Record a RUNNING trial whose process is gone as FAIL with `reason`, and re-queue it through
    the storage's retry callback (once by default; the retry resumes from the epoch checkpoint)."""
    get_callback = getattr(study._storage, "get_heartbeat_stale_trial_callback", None)
    callback = get_callback() if get_callback is not None else None
    try:
        study._storage.set_trial_user_attr(trial._trial_id, "reason", reason)
        if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL) and callback is not None:
            callback(study, study._storage.get_trial(trial._trial_id))
        return True
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def counts(study: optuna.Study, trials: list | None = None) -> dict[str, int]:
    """Trials by what became of them. finished = complete + pruned (what --trials counts); over
    budget trials were skipped by design and surplus ones (a race past the target) never ran, so
    neither counts as failed."""
    out = {s: 0 for s in ("finished", "pruned", "failed", "over_budget", "running", "waiting")}
    for t in study.get_trials(deepcopy=False) if trials is None else trials:
        status = t.user_attrs.get("status")
        if status == "over_budget":
            out["over_budget"] += 1
        elif status == "surplus":
            pass
        elif t.state == TrialState.FAIL or status in FAILED_STATES:
            out["failed"] += 1
        if t.state in FINISHED:
            out["finished"] += 1
            out["pruned"] += t.state == TrialState.PRUNED
        elif t.state == TrialState.RUNNING:
            out["running"] += 1
        elif t.state == TrialState.WAITING:
            out["waiting"] += 1
    return out


def describe_counts(c: dict[str, int]) -> str:
    """The non-zero pruned / over budget / failed / running counts of `counts`, e.g. '2 pruned, 1 failed'."""
    return ", ".join(f"{c[k]} {k.replace('_', ' ')}" for k in ("pruned", "over_budget", "failed", "running") if c[k])


FOLDER_OWNER = "study.json"  # in studies/<name>/: which study the checkpoints and results there belong to


def _databases(storage: str, studies_dir: Path = STUDIES_DIR) -> list[str]:
    """Which database a URL names, as study.json records it: an SQLite file in the studies folder by
    its name there (so a project folder can be moved or copied), another SQLite file by its absolute
    path, a server database by backend and name (credentials and host left out: workers may reach one
    server by different names). A file in the studies folder also answers to its absolute path, the
    form study.json held before."""
    path = sqlite_file(storage)
    if path is not None:
        full = path.resolve()
        if full.parent == studies_dir.resolve():
            return [f"sqlite:<studies>/{full.name}", f"sqlite:{full}"]
        return [f"sqlite:{full}"]
    try:
        from sqlalchemy.engine import make_url

        url = make_url(storage)
        return [f"{url.get_backend_name()}:{url.database}"]
    except Exception:
        return [storage.rsplit("@", 1)[-1]]


def study_key(study: optuna.Study, storage: str, studies_dir: Path = STUDIES_DIR) -> str:
    """The study's identity across runs and machines: its database and its id there."""
    return f"{_databases(storage, studies_dir)[0]}#{study._study_id}"


def check_study_dir(name: str, storage: str, study: optuna.Study | None = None,
                    studies_dir: Path = STUDIES_DIR) -> Path:
    """studies/<name>/; an error when it holds the files of a study of that name in another database
    (or, given `study`, of another study since deleted from this one): its checkpoints would be
    overwritten, or read as this study's. Without `study` it can run before the study is created."""
    folder = studies_dir / name
    owner = folder / FOLDER_OWNER
    if not owner.is_file():
        return folder
    theirs = str(read_json(owner, ("key",))["key"])
    database, _, number = theirs.rpartition("#")
    mine = _databases(storage, studies_dir)
    if database not in mine or (study is not None and number != str(study._study_id)):
        raise ArchsearchError(
            f"{folder}/ holds the checkpoints and results of another study named {name} "
            f"({database}), not of the one in {storage}: give this study another name "
            f"(--study NAME), or move {folder}/ away")
    return folder


def claim_study_dir(study: optuna.Study, storage: str, studies_dir: Path = STUDIES_DIR) -> Path:
    """check_study_dir, then create the folder and record its owner (before any trial runs)."""
    folder = check_study_dir(study.study_name, storage, study, studies_dir)
    ensure_writable_dir(folder, "checkpoints of the top trials")
    if not (folder / FOLDER_OWNER).is_file():
        write_json(folder / FOLDER_OWNER, {"study": study.study_name, "key": study_key(study, storage, studies_dir)})
    return folder


def _first_difference(a: object, b: object, at: str = "") -> str | None:
    """The dotted path of the first place where two JSON values differ (None: equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b:
                return f"{at}{k}"
            d = _first_difference(a[k], b[k], f"{at}{k}.")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, f"{at.rstrip('.')}[{i}].")
            if d:
                return d
        return None
    return None if a == b else at.rstrip(".") or "(the whole spec)"


def check_same_space(study: optuna.Study, space: Space) -> None:
    """A resumed study must go on with the space it was created with (the `search:` section aside:
    trials, sampler and storage may change): trials of two spaces in one study mix up the sampler,
    the importances and `best`."""
    rec = study.user_attrs.get("space")
    if not isinstance(rec, dict) or "data" not in rec:
        return

    def body(data: object) -> object:
        data = json.loads(json.dumps(data))
        return {k: v for k, v in data.items() if k != "search"} if isinstance(data, dict) else data

    where = _first_difference(body(rec["data"]), body(space.data))
    if where is not None:
        raise ArchsearchError(
            f"study {study.study_name} was created from another space ({rec.get('source') or 'unknown file'}); "
            f"{space.source or 'this one'} differs at {where}. Give it another name (--study NAME) for a new "
            "study, or run the original space (with the same --set) to resume")


def best_ok_trials(study: optuna.Study, k: int = 1) -> list[optuna.trial.FrozenTrial]:
    ok = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.user_attrs.get("status") == OK]
    return sorted(ok, key=lambda t: -t.user_attrs.get("val_metric", -math.inf))[:k]
