"""Many workers on one study: PostgreSQL and the SQLite default, study-wide trial counts, dead
workers, a dashboard reading alongside. Real servers and processes, digits data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import optuna
from optuna.trial import TrialState

from archsearch.search.storage import POOL_SIZE
from tests.conftest import ROOT, running_trials
from tests.scale.conftest import connections

SPACE = ROOT / "spaces" / "digits_cnn.yaml"
ARGS = ("--set", "train.epochs=2", "--set", "search.sampler.name=random")


def cli(cwd: Path, *args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archsearch", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def check_exact(study: optuna.Study, n: int, failed: set[int] = frozenset()) -> None:
    """Exactly n finished trials, unique, none left running or queued; FAIL only as `surplus`
    (a race beyond n) or for the trial numbers in `failed` (killed on purpose by the test)."""
    done = finished(study)
    assert len(done) == n
    assert len({t.number for t in done}) == n
    assert not study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    other = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
             if t.user_attrs.get("status") != "surplus"]
    assert {t.number for t in other} == set(failed), [t.user_attrs for t in other]


def test_four_workers_on_postgresql_finish_exactly_n_trials(postgres_url, tmp_path):
    peak = {"n": 0}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak["n"] = max(peak["n"], connections(postgres_url))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out = cli(tmp_path, "run", str(SPACE), "--workers", "4", "--trials", "20", "--storage", postgres_url,
                  "--study", "pg4", *ARGS)
    finally:
        stop.set()
        watcher.join()
    assert out.returncode == 0, out.stdout + out.stderr
    deadline = time.monotonic() + 10  # (a server backend ends a moment after its client disconnects)
    while connections(postgres_url) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert connections(postgres_url) == 0  # every process closed its connections
    assert "Traceback" not in out.stdout + out.stderr and "error" not in out.stderr.lower()
    assert out.stdout.count("finished trial(s) (") == 1 and "20 finished trial(s) (trials)" in out.stdout  # one closing line
    study = optuna.load_study(study_name="pg4", storage=postgres_url)
    check_exact(study, 20)
    # a surplus trial (a race past the target, never trained) is not reported as a failure
    lines = [line for line in out.stdout.splitlines() if "] trial " in line]
    assert len(lines) == 20 and all(" 0 failed |" in line for line in lines), out.stdout
    status = cli(tmp_path, "status", "--storage", postgres_url)  # (the server holds other tests' studies too)
    (line,) = [line for line in status.stdout.splitlines() if line.startswith("pg4 ")]
    assert status.returncode == 0 and " 20 finished" in line and "failed" not in line, status.stdout
    workers = {t.user_attrs["worker"] for t in finished(study)}
    assert len(workers) >= 2, workers  # the trials really were shared
    assert 1 <= peak["n"] <= (4 + 1) * POOL_SIZE, peak  # (workers + the parent) × pool size


def test_two_workers_on_sqlite_with_a_dashboard_polling(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the study must exist before the dashboard starts: create it with one finished trial
    out = cli(tmp_path, "run", str(SPACE), "--trials", "1", *ARGS)
    assert out.returncode == 0, out.stderr
    dash = subprocess.Popen([sys.executable, "-m", "archsearch", "dashboard", "--study", "digits_cnn", "--port",
                             str(port)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    polls, errors = {"n": 0}, []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/1", timeout=10) as r:
                    json.loads(r.read())
                polls["n"] += 1
            except OSError:
                pass  # not up yet
            except Exception as e:  # a broken answer
                errors.append(repr(e))
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        out = cli(tmp_path, "run", str(SPACE), "--workers", "2", "--trials", "20", *ARGS)
    finally:
        stop.set()
        poller.join()
        alive = dash.poll() is None
        dash.send_signal(signal.SIGTERM)
        _, dash_err = dash.communicate(timeout=30)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "database is locked" not in text + dash_err and "Traceback" not in text + dash_err
    assert alive and polls["n"] >= 10 and not errors
    study = optuna.load_study(study_name="digits_cnn", storage=f"sqlite:///{tmp_path / 'studies' / 'digits_cnn.db'}")
    check_exact(study, 20)
    assert len({t.user_attrs["worker"] for t in finished(study)}) >= 2


def test_a_killed_worker_trial_is_failed_and_retried_on_restart(tmp_path):
    """kill -9 mid-trial, then `run` again: the dead trial is FAIL at start-up (its process is
    gone), re-queued, and the study ends with exactly N finished trials and none RUNNING."""
    storage = f"sqlite:///{tmp_path / 'studies' / 'digits_cnn.db'}"
    slow = ("--set", "train.epochs=15", "--set", "search.pruner.name=none", "--set", "search.sampler.name=random")
    proc = subprocess.Popen([sys.executable, "-m", "archsearch", "run", str(SPACE), "--trials", "2", *slow],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 180
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        try:
            study = optuna.load_study(study_name="digits_cnn", storage=storage)
        except Exception:
            continue
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if len(t.user_attrs.get("history", [])) >= 2:
                victim = t.number
    assert victim is not None, "no trial reached its second epoch"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    study = optuna.load_study(study_name="digits_cnn", storage=storage)
    assert study.trials[victim].state == TrialState.RUNNING  # what kill -9 leaves behind
    reached = len(study.trials[victim].user_attrs["history"])
    assert (tmp_path / "studies" / "digits_cnn" / "resume" / f"trial_{victim}.pt").is_file()
    out = cli(tmp_path, "run", str(SPACE), "--trials", "2", *slow)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"#{victim}" in out.stdout and "dead workers" in out.stdout
    study = optuna.load_study(study_name="digits_cnn", storage=storage)
    assert study.trials[victim].state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    retry = retries[0]
    assert retry.params == study.trials[victim].params
    assert retry.user_attrs["resumed_from_epoch"] >= reached  # continued from its last epoch checkpoint
    assert [h["epoch"] for h in retry.user_attrs["history"]] == list(range(1, 16))
    assert not list((tmp_path / "studies" / "digits_cnn" / "resume").glob("*.pt"))
    done = finished(study)
    assert len(done) == 2 and not study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))


def test_sigterm_ends_the_running_trial_as_fail_even_with_sigint_ignored(tmp_path):
    storage = f"sqlite:///{tmp_path / 'studies' / 'digits_cnn.db'}"
    # a trial far longer than the test waits: the signal lands mid-trial, not in the grace second
    # in which a trial process may still finish on its own
    # started as a background job is (`archsearch run ... &` from a script, nohup): SIGINT ignored,
    # inherited by the trial processes, which must still stop when the worker passes the signal on
    proc = subprocess.Popen([sys.executable, "-m", "archsearch", "run", str(SPACE), "--trials", "2",
                             "--set", "train.epochs=1000", "--set", "search.pruner.name=none"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 120
    running: list[int] = []
    while not running and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        running = running_trials(tmp_path / "studies" / "digits_cnn.db", trained=True)
    assert running, proc.stderr.read() if proc.poll() is not None else "no trial trained an epoch in 120 s"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    study = optuna.load_study(study_name="digits_cnn", storage=storage)
    assert not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    assert study.trials[running[0]].state == TrialState.FAIL
