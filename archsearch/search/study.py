"""Storage, sampler, pruner; create or resume a study and run trials until N have finished."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from archsearch.data.testsplit import test_split_forbidden
from archsearch.errors import ArchsearchError, DataError, SpecError
from archsearch.fs import ensure_writable_dir, read_json, write_json
from archsearch.search.budget import over_budget_everywhere
from archsearch.search.isolation import exit_reason, fork_trial, unclaim, use_processes, wait_trial
from archsearch.search.storage import (STUDIES_DIR, check_exists, check_reachable, default_storage, make_storage,
                                       release, sqlite_file, storage_error)
from archsearch.search.objective import FAILED_STATES, OK, Objective, Surplus
from archsearch.spec.search import PrunerSpec, SamplerSpec, SearchSpec
from archsearch.spec.space import Space, check_space
from archsearch.train.precision import resolve_device

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# isolate: auto gives up the process per trial when the first trials that train are this short (its
# ~0.2 s would cost more than 10 % of the search; bench/isolation.py)
AUTO_PROBE_TRIALS, AUTO_MIN_TRIAL_SECONDS = 3, 2.0
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


@dataclass
class SearchResult:
    study: optuna.Study
    finished: int
    stopped: str  # trials | timeout | failures | interrupted


class _LiveView:
    """Prints one line a trial: n/N, outcome, best so far, counts, ETA."""

    def __init__(self, study: optuna.Study, target: int, echo, tag: str = "") -> None:
        self.study, self.target, self.echo, self.tag = study, target, echo, tag
        c = counts(study)
        self.t0, self.start_trained = time.perf_counter(), c["finished"] - c["over_budget"]

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.user_attrs.get("status") == "surplus":  # never ran: nothing to report
            return
        trials = study.get_trials(deepcopy=False)
        c = counts(study, trials)
        n_done, pruned, over, failed = c["finished"], c["pruned"], c["over_budget"], c["failed"]
        ok = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("status") == OK]
        best = max(ok, key=lambda t: t.user_attrs["val_metric"], default=None)
        # seconds per trial that trained (an over-budget one is refused in milliseconds)
        trained = n_done - over - self.start_trained
        rate = (time.perf_counter() - self.t0) / trained if trained > 0 else None
        eta = f"{rate * max(0, self.target - n_done) / 60:.1f} min" if rate is not None else "-"
        status = trial.user_attrs.get("status", trial.state.name.lower())
        val = trial.user_attrs.get("val_metric")
        reason = trial.user_attrs.get("reason") or trial.system_attrs.get("fail_reason", "")
        history = trial.user_attrs.get("history") or []
        if val is None and trial.state == TrialState.PRUNED and history:  # where the pruner stopped it
            what = f"epoch {history[-1]['epoch']}: val {history[-1]['val_metric']:.4f}"
        else:
            what = f"val {val:.4f}" if val is not None else reason.strip().splitlines()[-1][:70] if reason else ""
        best_s = f"best {best.user_attrs['val_metric']:.4f} (#{best.number})" if best else "best -"
        self.echo(
            f"{self.tag}trial {trial.number:>3} [{n_done}/{self.target}] {status:<11} {what:<24} "
            f"params {trial.user_attrs.get('params', 0):>10,} | {best_s} | {pruned} pruned, "
            + (f"{over} over budget, " if over else "") + f"{failed} failed | "
            f"ETA {eta}"
        )


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


def _host() -> str:
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
    host = _host()
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


def _in_data(dim) -> bool:
    """Whether a search dimension lies in the data section (whatever its Optuna name)."""
    return bool(dim.loc) and dim.loc[0] == "data"


def check_space_data(space: Space, data_dir: str | None = None) -> None:
    """Check the data of the space's extremes (each distinct data section once): a missing dataset
    or a split size the data cannot give fails here, once, before a study is created, instead of
    in every trial."""
    from archsearch.data.prepare import check_train_val, data_key
    from archsearch.spec.space import _pick

    assignments = [("all low", _pick("low")), ("all high", _pick("high"))]
    searched = [d for d in space.dims if _in_data(d)]
    for dim in searched:
        if dim.kind == "choice":
            assignments += [(f"{dim.name} = {c!r}", _pick("low", dim, i)) for i, c in enumerate(dim.choices)]
    seen: set[str] = set()
    for label, suggest in assignments:
        try:
            spec = space.resolve(suggest)
        except SpecError:
            continue  # check_space reported it
        key = data_key(spec.data, spec.model.input_shape)
        if key in seen:
            continue
        seen.add(key)
        try:
            check_train_val(spec.data, spec.model.input_shape, data_dir)
        except DataError as e:
            line = space.lines.get(tuple(e.field.split("."))) if e.field else None
            where = f"{space.source or 'the space'}: " + (f"line {line[0]}: " if line else "")
            raise DataError(where + str(e) + (f" [when {label}]" if searched else ""), e.field) from None


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


def prepare_study(space: Space, search: SearchSpec, study_name: str,
                  storage: str | None = None, data_dir: str | None = None) -> tuple[optuna.Study, str, int]:
    """Check the whole space and its data, check the studies folder, create or resume the study and
    store the space in it (for workers that join by name). Returns (study, storage URL, extreme specs
    checked)."""
    if not study_name or "/" in study_name or "\\" in study_name or study_name.startswith("."):
        raise ArchsearchError(f"study name {study_name!r}: give a name, not a path (it names the folder "
                              f"{STUDIES_DIR}/<name>/ and, by default, {STUDIES_DIR}/<name>.db)")
    checked, problems = check_space(space)
    if problems:
        raise SpecError(problems, space.source)
    check_space_data(space, data_dir)
    storage = storage or search.storage or default_storage(study_name)
    check_reachable(storage)  # a bad URL is named as such, not as the folder clash below
    check_study_dir(study_name, storage)  # before a study is created in another storage
    study = open_study(study_name, storage, search, space)
    check_same_space(study, space)
    claim_study_dir(study, storage)  # before any trial runs
    if "space" not in study.user_attrs:
        study.set_user_attr("space", space_record(space))
    return study, storage, checked


def search_header(name: str, storage: str, finished: int, target: int, space: Space, checked: int) -> str:
    """The first line of a search: where, how far, what is searched."""
    what = (f"{len({d.name for d in space.dims})} parameters, {checked} extreme specs checked" if space.dims
            else "a fixed spec (no search dimensions): trained once, later trials reuse its result")
    return f"study {name} on {storage}: {finished} finished trial(s), target {target}; {what}"


def run_search(space: Space, search: SearchSpec, *, study_name: str, storage: str | None = None,
               trials: int | None = None, timeout: float | None = None, device: str | None = None,
               data_dir: str | None = None, echo=print, progress: bool = False, worker: str | None = None,
               poll_seconds: float = 2.0) -> SearchResult:
    """Check the space, open the study, run trials until `trials` have finished study-wide.

    Several processes (here or on other machines) may run this on the same study: each starts a
    trial only while finished + running + queued trials are below the target, and a trial that
    a race started beyond it ends as FAIL with status `surplus` before any training, so the study
    ends with exactly `trials` finished trials. `progress` shows the running trial's progress
    bar (stderr) between the one-line-a-trial reports."""
    import os

    target = trials or search.trials
    timeout = timeout if timeout is not None else search.timeout
    dev = resolve_device(device)
    study, storage, checked = prepare_study(space, search, study_name, storage, data_dir)
    study_dir = STUDIES_DIR / study_name
    try:
        recover_dead_trials(study, echo)
        c = counts(study)
        tag = f"[{worker}] " if worker else ""
        echo(f"{tag}{search_header(study_name, storage, c['finished'], target, space, checked)}; device {dev}")
        if not worker and c["finished"] < target and (warning := over_budget_everywhere(space)):
            echo(f"warning: {warning}")  # a worker of `--workers N`: the parent said it once
        if c["finished"] >= target:
            return SearchResult(study, c["finished"], "trials")
        me = f"{_host()}:{os.getpid()}"
        objective = Objective(space, study_dir, device=dev, objectives=list(search.objectives),
                              keep_top_k=search.keep_top_k, data_dir=data_dir, pruner=search.pruner,
                              progress=progress, target=target, worker=me)
        stop_reason = {"why": "trials"}
        streak = {"n": 0}

        def stop_on_failures(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if trial.user_attrs.get("status") == "surplus":
                return
            bad = trial.state == TrialState.FAIL or trial.user_attrs.get("status") in FAILED_STATES
            streak["n"] = streak["n"] + 1 if bad else 0
            if streak["n"] >= search.max_consecutive_failures:  # the loop below ends (one trial per optimize call;
                stop_reason["why"] = "failures"                  # study.stop() would raise outside optimize)

        view = _LiveView(study, target, echo, tag)

        def stale_message(e: Exception) -> str:  # another worker failed our trial as heartbeat-stale (optuna#3198)
            return (f"{tag}a trial of this worker was failed by another one ({e}); this worker goes on. "
                    "If it was not paused or suspended, search.heartbeat.grace may be too short")

        isolated = use_processes(search.isolate, dev.type)
        if not isolated:
            unclaim()
        if isolated and dev.type == "cpu":  # prepared once here, shared copy-on-write by every trial process
            _prepare_shared_data(space, objective)

        walls: list[float] = []  # auto's probe: wall times of the first trials that trained
        probing = isolated and search.isolate == "auto"

        def one_trial() -> None:
            nonlocal isolated, probing
            if probing and len(walls) == AUTO_PROBE_TRIALS:
                probing = False  # decided once
                typical = sorted(walls)[len(walls) // 2]
                if typical < AUTO_MIN_TRIAL_SECONDS:  # the process would cost more than the trial is worth
                    isolated = False
                    unclaim()
                    echo(f"{tag}trials take {typical:.1f} s here: the next ones run in this process "
                         "(search.isolate: process keeps a process per trial)")
            offset = len(study.get_trials(deepcopy=False))
            if not isolated:  # (a full gc after each trial frees CUDA memory; on the CPU it only costs time)
                study.sampler = make_sampler(search.sampler, space, len(search.objectives) > 1, offset)
                study.optimize(objective, n_trials=1, callbacks=[view, stop_on_failures],
                               gc_after_trial=dev.type == "cuda", catch=(Surplus,))
                return

            def child() -> int:
                mine = open_study(study_name, storage, search, space, seed_offset=offset)
                objective.worker = f"{_host()}:{os.getpid()}"
                try:
                    mine.optimize(objective, n_trials=1, callbacks=[view], gc_after_trial=False, catch=(Surplus,))
                except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as e:
                    if not taken_over(e):
                        raise
                    echo(stale_message(e))
                finally:
                    release(mine._storage)
                return 0

            # no pooled connection crosses the fork (a child must not share the parent's sockets); the
            # trial process opens its own, this one reconnects when it is back
            release(study._storage)
            t0 = time.perf_counter()
            pid = fork_trial(child)
            code = wait_trial(pid)
            wall = time.perf_counter() - t0
            if code == 130:
                raise KeyboardInterrupt
            who = f"{_host()}:{pid}"
            ran = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker") == who]
            if probing and any(t.user_attrs.get("history") for t in ran):  # trials that trained, not those
                walls.append(wall)                                          # rejected before (over budget, twins)
            for t in ran:
                if t.state == TrialState.RUNNING:  # the process died before recording its trial
                    reason = exit_reason(code)
                    fail_and_retry(study, t, reason)
                    echo(f"{tag}trial {t.number:>3} failed: {reason}; re-queued to resume from its last epoch "
                         "checkpoint")
                    t = study._storage.get_trial(t._trial_id)
                stop_on_failures(study, t)

        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with test_split_forbidden(f"archsearch run (study {study_name})"):
                while stop_reason["why"] == "trials":
                    if deadline is not None and time.monotonic() >= deadline:
                        stop_reason["why"] = "timeout"
                        break
                    c = counts(study)
                    if c["finished"] >= target:
                        break
                    if c["finished"] + c["running"] + c["waiting"] >= target and c["waiting"] == 0:
                        time.sleep(poll_seconds)  # the rest is running elsewhere; take over if it dies
                        recover_dead_trials(study, echo)
                        continue
                    try:
                        one_trial()
                    except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as e:
                        if not taken_over(e):
                            raise
                        echo(stale_message(e))
        except KeyboardInterrupt:
            stop_reason["why"] = "interrupted"
        if stop_reason["why"] == "failures":
            t = study.trials[-1]
            last = t.user_attrs.get("reason") or (t.system_attrs.get("fail_reason") or "").strip().splitlines()[-1:]
            last = last if isinstance(last, str) else (last[0] if last else f"see trial {t.number}")
            raise ArchsearchError(
                f"stopped after {search.max_consecutive_failures} consecutive failed trials "
                f"(search.max_consecutive_failures); the last said: {last}. Fix the space and run again."
            )
        return SearchResult(study, finished_count(study), stop_reason["why"])
    finally:
        release(study._storage)


def taken_over(e: Exception) -> bool:
    """Whether `e` says another worker already finished this worker's trial (failed it as
    heartbeat-stale): Optuna raises UpdateFinishedTrialError from the trial's own writes, and
    ValueError("Cannot tell a FAIL trial.") when optimize records the result (optuna#3198)."""
    return isinstance(e, optuna.exceptions.UpdateFinishedTrialError) or (
        isinstance(e, ValueError) and str(e).startswith("Cannot tell a "))


def _prepare_shared_data(space: Space, objective: Objective) -> None:
    """Train/val data for trial processes to inherit, when the space does not search the data."""
    from archsearch.spec.space import _pick

    if any(_in_data(d) for d in space.dims):
        return
    try:
        objective.data_for(space.resolve(_pick("low")))
    except (ArchsearchError, SpecError):
        return  # the trial reports it


def best_ok_trials(study: optuna.Study, k: int = 1) -> list[optuna.trial.FrozenTrial]:
    ok = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.user_attrs.get("status") == OK]
    return sorted(ok, key=lambda t: -t.user_attrs.get("val_metric", -math.inf))[:k]
