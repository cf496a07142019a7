"""Each trial in its own process (search.isolate): trials run in forked children of the worker, a
killed trial process fails alone and resumes, a suspended one is taken over without crashing its
worker (optuna#3198), NaN trials under several workers, kill -9 on PostgreSQL. Real processes,
real storages, digits data."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from archsearch.errors import ArchsearchError
from archsearch.search.isolation import use_processes
from archsearch.search.storage import release
from tests.scale.test_workers import SPACE, check_exact, cli, finished

SLOW = ("--set", "train.epochs=15", "--set", "search.pruner.name=none", "--set", "search.sampler.name=random")


def start(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "archsearch", "run", str(SPACE), *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_running(storage: str, study: str, epochs: int, timeout: float = 180) -> optuna.trial.FrozenTrial:
    """The first RUNNING trial that has reported `epochs` epochs."""
    deadline = time.monotonic() + timeout
    store = None  # one pool, closed at the end: the test holds no connections of its own
    try:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                store = store or optuna.storages.RDBStorage(storage)
                trials = optuna.load_study(study_name=study, storage=store).get_trials(states=(TrialState.RUNNING,))
            except Exception:  # not created yet
                continue
            for t in trials:
                if len(t.user_attrs.get("history", [])) >= epochs:
                    return t
    finally:
        if store is not None:
            release(store)
    raise AssertionError(f"no trial reached epoch {epochs}")


def pid_of(trial: optuna.trial.FrozenTrial) -> int:
    return int(trial.user_attrs["worker"].rsplit(":", 1)[1])


def test_auto_runs_each_trial_in_its_own_process_and_process_needs_a_fresh_one():
    # a process that did not claim itself at its start (this one has computed with torch): no fork
    assert use_processes("auto", "cpu") is False and use_processes("none", "cpu") is False
    with pytest.raises(ArchsearchError, match="search.isolate: process"):
        use_processes("process", "cpu")


def test_auto_keeps_short_trials_in_the_worker_after_three(tmp_path):
    # trials of well under AUTO_MIN_TRIAL_SECONDS even on a slow, busy 2-core CPU: 1 epoch on 200 images
    out = cli(tmp_path, "run", str(SPACE), "--trials", "5", "--set", "train.epochs=1", "--set", "data.train_size=200",
              "--set", "search.pruner.name=none", "--set", "search.sampler.name=random")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "the next ones run in this process" in out.stdout
    study = optuna.load_study(study_name="digits_cnn", storage=f"sqlite:///{tmp_path / 'studies' / 'digits_cnn.db'}")
    pids = [pid_of(t) for t in sorted(finished(study), key=lambda t: t.number)]
    assert len(set(pids[:3])) == 3 and pids[3] == pids[4] and pids[3] not in pids[:3]


def test_a_killed_trial_process_fails_alone_and_resumes_in_the_same_run(tmp_path):
    """kill -9 of the trial's process (what the kernel's OOM killer does): the worker records the
    trial as FAIL with the signal, retries it from its epoch checkpoint and finishes the study."""
    storage = f"sqlite:///{tmp_path / 'studies' / 'digits_cnn.db'}"
    proc = start(tmp_path, "--trials", "3", *SLOW, "--set", "search.isolate=process")
    victim = wait_for_running(storage, "digits_cnn", 2)
    child = pid_of(victim)
    assert child != proc.pid  # the trial runs in a process of its own
    reached = len(victim.user_attrs["history"])
    os.kill(child, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err
    assert f"trial {victim.number:>3} failed: the trial process was killed by SIGKILL" in out
    study = optuna.load_study(study_name="digits_cnn", storage=storage)
    dead = study.trials[victim.number]
    assert dead.state == TrialState.FAIL and "SIGKILL" in dead.user_attrs["reason"]
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == dead.params
    assert retry[0].user_attrs["resumed_from_epoch"] >= reached
    assert [h["epoch"] for h in retry[0].user_attrs["history"]] == list(range(1, 16))
    check_exact(study, 3, failed={victim.number})
    pids = {pid_of(t) for t in finished(study)}
    assert len(pids) == 3 and proc.pid not in pids  # one process per trial, none of them the worker
    assert not list((tmp_path / "studies" / "digits_cnn" / "resume").glob("*.pt"))


def freeze_outside_a_write(pid: int, db: Path, tries: int = 50) -> None:
    """SIGSTOP `pid` at a moment it holds no SQLite write lock. Frozen inside a write (a heartbeat
    every second), it would block every other writer for the busy timeout — what a frozen
    SQLite writer does to any search, and not what this test is about."""
    for _ in range(tries):
        os.kill(pid, signal.SIGSTOP)
        con = sqlite3.connect(db, timeout=0.5)
        try:
            con.execute("BEGIN IMMEDIATE")  # takes the write lock only if nobody holds it
            con.rollback()
            return
        except sqlite3.OperationalError:
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.1)
        finally:
            con.close()
    raise AssertionError(f"process {pid} held the write lock at every one of {tries} tries")


@pytest.mark.parametrize("isolate", ["process", "none"])
def test_a_suspended_trial_taken_over_by_another_worker_does_not_crash_its_own(tmp_path, isolate):
    """optuna#3198: a worker stopped (SIGSTOP) longer than the heartbeat grace has its trial failed
    and retried by another worker; when it wakes up it must not crash ("Cannot tell a FAIL trial")."""
    storage = f"sqlite:///{tmp_path / 'studies' / 'digits_cnn.db'}"
    beat = ("--set", "search.heartbeat.interval=1", "--set", "search.heartbeat.grace=3",
            "--set", f"search.isolate={isolate}")
    first = start(tmp_path, "--trials", "2", *SLOW, *beat)
    victim = wait_for_running(storage, "digits_cnn", 2)
    child = pid_of(victim)
    freeze_outside_a_write(child, tmp_path / "studies" / "digits_cnn.db")  # frozen: no heartbeat, no progress
    try:
        second = cli(tmp_path, "run", str(SPACE), "--trials", "2", *SLOW, *beat, timeout=300)
    finally:
        os.kill(child, signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert first.returncode == 0, out + err
    assert "failed by another one" in out and "Traceback" not in err + second.stderr
    study = optuna.load_study(study_name="digits_cnn", storage=storage)
    assert study.trials[victim.number].state == TrialState.FAIL
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    check_exact(study, 2, failed={victim.number})


def test_nan_trials_under_two_workers_are_recorded_and_the_study_goes_on(tmp_path):
    space = tmp_path / "nan.yaml"  # (lr 1e3 sometimes still trains here, batch norm absorbing it; 1e30 overflows)
    text = SPACE.read_text().replace("lr: {float: [1.0e-4, 3.0e-2], log: true, name: lr}",
                                     "lr: {choice: [1.0e+30, 0.01], name: lr}")
    text = text.replace("optimizer: {choice: [adam, sgd], name: optimizer}", "optimizer: sgd")
    assert "1.0e+30" in text
    space.write_text(text + "\n")
    out = cli(tmp_path, "run", str(space), "--workers", "2", "--trials", "8", "--set", "train.epochs=2",
              "--set", "search.sampler.name=random", "--set", "search.max_consecutive_failures=8",
              "--set", "search.pruner.name=none")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    study = optuna.load_study(study_name="digits_cnn", storage=f"sqlite:///{tmp_path / 'studies' / 'digits_cnn.db'}")
    check_exact(study, 8)
    statuses = {t.params["lr"]: set() for t in finished(study)}
    for t in finished(study):
        statuses[t.params["lr"]].add(t.user_attrs["status"])
    assert statuses.get(1e30) == {"nan_loss"}, statuses
    assert statuses.get(0.01) == {"ok"}, statuses
    assert all("nan" in t.user_attrs["reason"].lower() for t in finished(study) if t.params["lr"] == 1e30)


def test_kill_9_on_postgresql_then_restart_resumes(postgres_url, tmp_path):
    """The kill -9 test of test_workers on a PostgreSQL study: the worker (and with it its trial
    process) dies, the restart fails the trial and its retry resumes from the checkpoint."""
    args = ("--trials", "2", "--storage", postgres_url, "--study", "pgkill", *SLOW)
    proc = start(tmp_path, *args)
    victim = wait_for_running(postgres_url, "pgkill", 2)
    reached = len(victim.user_attrs["history"])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10  # the trial process follows its worker (PR_SET_PDEATHSIG)
    while time.monotonic() < deadline:
        try:
            os.kill(pid_of(victim), 0)
            time.sleep(0.1)
        except ProcessLookupError:
            break
    else:
        raise AssertionError("the trial process outlived its killed worker")
    study = optuna.load_study(study_name="pgkill", storage=postgres_url)
    assert study.trials[victim.number].state == TrialState.RUNNING
    release(study._storage)
    out = cli(tmp_path, "run", str(SPACE), *args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"#{victim.number}" in out.stdout and "dead workers" in out.stdout
    study = optuna.load_study(study_name="pgkill", storage=postgres_url)
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].user_attrs["resumed_from_epoch"] >= reached
    check_exact(study, 2, failed={victim.number})
    release(study._storage)


def test_consecutive_failures_stop_a_search_of_trial_processes(tmp_path):
    out = cli(tmp_path, "run", str(SPACE), "--trials", "10", "--set", "search.budgets.max_params=10",
              "--set", "search.max_consecutive_failures=3", "--set", "search.isolate=process")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "stopped after 3 consecutive failed trials" in out.stderr and "Traceback" not in out.stderr
    study = optuna.load_study(study_name="digits_cnn", storage=f"sqlite:///{tmp_path / 'studies' / 'digits_cnn.db'}")
    assert [t.user_attrs["status"] for t in study.trials] == ["over_budget"] * 3


def test_a_user_error_in_a_trial_process_is_one_message_as_in_process(tmp_path):
    """An ArchsearchError inside a trial (here: a weights file torch.save did not write) stops the
    search with its one message and exit 2, whether the trial ran in its own process or not; the
    trial records it (status error, reason)."""
    space = ("name: badweights\nmodel:\n  input: [1, 8, 8]\n  num_classes: 10\n"
             "  backbone: {name: resnet18, pretrained: bad.pth, small_input: true}\n"
             "data: {dataset: digits}\ntrain: {epochs: 1, lr: {float: [1.0e-3, 1.0e-2]}}\nsearch: {trials: 3}\n")
    errors = {}
    for isolate in ("process", "none"):
        folder = tmp_path / isolate
        folder.mkdir()
        (folder / "bad.pth").write_text("not weights")
        (folder / "space.yaml").write_text(space)
        out = cli(folder, "run", "space.yaml", "--set", f"search.isolate={isolate}")
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        errors[isolate] = out.stderr.replace(str(folder), "<folder>")
        study = optuna.load_study(study_name="badweights", storage=f"sqlite:///{folder / 'studies' / 'badweights.db'}")
        assert [(t.state, t.user_attrs.get("status")) for t in study.trials] == [(TrialState.FAIL, "error")]
        assert "not a file torch.save wrote" in study.trials[0].user_attrs["reason"]
    assert errors["process"] == errors["none"]
    assert errors["none"].startswith("error: model.backbone.pretrained: cannot read <folder>/bad.pth")
    # nothing trained under that space: the fixed one takes the study's name (a trained study would refuse it)
    fixed = cli(tmp_path / "none", "run", "space.yaml", "--trials", "1", "--set", "model.backbone.pretrained=none")
    assert fixed.returncode == 0, fixed.stderr
    study = optuna.load_study(study_name="badweights", storage=f"sqlite:///{folder / 'studies' / 'badweights.db'}")
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.user_attrs["space"]["data"]["model"]["backbone"]["pretrained"] == "none"
