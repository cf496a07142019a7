"""Run a search: check the space and its data, create or resume the study, run trials (in this
process or a process each) until N have finished study-wide, one line a trial."""

from __future__ import annotations

import time
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from archsearch.data.testsplit import test_split_forbidden
from archsearch.errors import ArchsearchError, DataError, SpecError
from archsearch.search.budget import over_budget_everywhere
from archsearch.search.isolation import (USER_ERROR, exit_reason, fork_trial, unclaim, use_processes, user_error,
                                         wait_trial)
from archsearch.search.objective import Objective, Surplus
from archsearch.search.storage import STUDIES_DIR, check_reachable, default_storage, release
from archsearch.search.study import (FAILED_STATES, FINISHED, OK, host_name, check_same_space, check_study_dir,
                                     claim_study_dir, counts, fail_and_retry, finished_count, make_sampler,
                                     open_study, recover_dead_trials, space_record)
from archsearch.spec.search import SearchSpec
from archsearch.spec.space import Space, check_space
from archsearch.train.precision import resolve_device

# isolate: auto gives up the process per trial when the first trials that train are this short (its
# ~0.2 s would cost more than 10 % of the search; bench/isolation.py)
AUTO_PROBE_TRIALS, AUTO_MIN_TRIAL_SECONDS = 3, 2.0


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
            check_train_val(spec.data, spec.model.input_shape, data_dir, spec.model.num_classes)
        except DataError as e:
            line = space.lines.get(tuple(e.field.split("."))) if e.field else None
            at = "" if not line else f"{line[0]}: " if isinstance(line[0], str) else f"line {line[0]}: "  # str: a --set
            where = f"{space.source or 'the space'}: {at}"
            raise DataError(where + str(e) + (f" [when {label}]" if searched else ""), e.field) from None


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
    trained = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    if trained:
        check_same_space(study, space)
    claim_study_dir(study, storage)  # before any trial runs
    if not trained:  # nothing finished or running under a stored space (a first run, or one that failed at
        study.set_user_attr("space", space_record(space))  # once, e.g. on a bad weights file): this space
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
        me = f"{host_name()}:{os.getpid()}"
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
                objective.worker = f"{host_name()}:{os.getpid()}"
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
            if code == USER_ERROR:  # as in this process: the search stops with the trial's error
                raise user_error(pid)
            who = f"{host_name()}:{pid}"
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
