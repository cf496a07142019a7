"""Searches on real small data (digits): pruning, budgets, resume, the held-out test split."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from archsearch.data.testsplit import held_out_reads
from archsearch.errors import ArchsearchError, DataError, SpecError
from archsearch.search import run_search
from archsearch.spec import load_spec
from archsearch.spec.search import SearchSpec
from archsearch.spec.space import check_space, load_space
from tests.conftest import ROOT, running_trials

SPACE = ROOT / "spaces" / "digits_cnn.yaml"


def search(tmp_path, monkeypatch, *overrides, trials=None, storage=None, echo=lambda s: None):
    monkeypatch.chdir(tmp_path)
    space = load_space(SPACE, list(overrides))
    spec = SearchSpec.model_validate(space.section("search"))
    return run_search(space, spec, study_name="t", trials=trials, storage=storage, echo=echo).study


@pytest.mark.parametrize(("pruner", "expect_pruned"), [("median", True), ("none", False)])
def test_median_pruner_prunes_and_none_does_not(tmp_path, monkeypatch, pruner, expect_pruned):
    reads = held_out_reads()
    lines: list[str] = []
    study = search(tmp_path, monkeypatch, f"search.pruner.name={pruner}", "train.epochs=5", trials=12,
                   echo=lines.append)
    assert held_out_reads() == reads, "the search read the test split"
    states = [t.state for t in study.trials]
    assert len(study.trials) == 12
    pruned = states.count(TrialState.PRUNED)
    assert (pruned >= 1) if expect_pruned else (pruned == 0)
    for t in study.trials:  # a pruned trial's line says where it was stopped and at what value
        if t.state == TrialState.PRUNED:
            last = t.user_attrs["history"][-1]
            line = next(line for line in lines if line.startswith(f"trial {t.number:>3} "))
            assert f"pruned      epoch {last['epoch']}: val {last['val_metric']:.4f}" in line, line
    ok = [t for t in study.trials if t.user_attrs.get("status") == "ok"]
    assert ok and all(len(t.user_attrs["history"]) == 5 for t in ok)
    assert all({"spec", "params", "flops", "memory_bytes", "device", "seconds"} <= set(t.user_attrs) for t in ok)
    kept = sorted((tmp_path / "studies" / "t").glob("trial_*.pt"))
    assert 1 <= len(kept) <= 3


def test_budgets_reject_before_training_and_feed_the_sampler(tmp_path, monkeypatch):
    # widths 8..32 and depth 1..2 give 1.4k..15k parameters; the budget sits in between
    lines: list[str] = []
    study = search(tmp_path, monkeypatch, "search.budgets.max_params=4000", "search.budgets.gpu_memory=40MB",
                   "train.epochs=2", "search.sampler.name=random", trials=10, echo=lines.append)
    rejected = [t for t in study.trials if t.user_attrs.get("status") == "over_budget"]
    ok = [t for t in study.trials if t.user_attrs.get("status") == "ok"]
    assert rejected and ok
    last = [line for line in lines if line.startswith("trial")][-1]
    assert f"{len(rejected)} over budget, 0 failed" in last  # skipped by design, not counted as failures
    for t in ok:
        assert t.user_attrs["params"] <= 4000 and t.user_attrs["memory_bytes"] <= 40e6
        assert t.system_attrs["constraints:feasibility"] == 0.0
    for t in rejected:
        assert "max_params" in t.user_attrs["reason"] or "gpu_memory" in t.user_attrs["reason"]
        assert t.system_attrs["constraints:feasibility"] > 0
        assert (t.datetime_complete - t.datetime_start).total_seconds() < 1.0
        assert "history" not in t.user_attrs  # never trained
    assert study.best_trial.user_attrs["status"] == "ok"


def test_resume_counts_finished_trials_study_wide(tmp_path, monkeypatch):
    search(tmp_path, monkeypatch, "train.epochs=2", trials=5)
    study = search(tmp_path, monkeypatch, "train.epochs=2", trials=10)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == 10 and sorted(set(numbers)) == list(range(10))
    again = search(tmp_path, monkeypatch, "train.epochs=2", trials=10)
    assert len(again.trials) == 10


def test_consecutive_failures_stop_the_search(tmp_path, monkeypatch):
    with pytest.raises(ArchsearchError, match="consecutive failed trials"):
        search(tmp_path, monkeypatch, "search.budgets.max_params=10", "search.max_consecutive_failures=3", trials=10)
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path}/studies/t.db")
    assert len(study.trials) == 3


def test_impossible_split_sizes_fail_once_before_a_study_exists(tmp_path):
    # digits: ~1,617 non-test images, 20 % of them val: 1,000 val images cannot be had
    text = SPACE.read_text().replace("  val_fraction: 0.2\n", "  val_fraction: 0.2\n  val_size: 1000\n")
    line = text.splitlines().index("  val_size: 1000") + 1
    (tmp_path / "s.yaml").write_text(text)
    cmd = [sys.executable, "-m", "archsearch", "run", "s.yaml", "--trials", "3"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"s.yaml: line {line}: data.val_size=1000 but only" in out.stderr
    assert not (tmp_path / "studies").exists()  # no study, no trial, nothing half-written


def test_a_searched_data_size_is_checked_at_its_extremes(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"data.train_size=5000 .*\[when all high\]"):
        search(tmp_path, monkeypatch, "data.train_size={choice: [200, 5000]}", trials=2)
    assert not (tmp_path / "studies").exists()


def test_space_extremes_are_checked_with_lines(write):
    bad = write("s.yaml", SPACE.read_text().replace("    - {type: maxpool}\n", "    - {type: maxpool, kernel: {int: [2, 16]}}\n"))
    checked, problems = check_space(load_space(bad))
    assert checked > 2 and problems
    assert any(p.path == "model.layers[1]" and "all high" in p.message and p.line == 15 for p in problems)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ("{choice: [8, 16, 32], name: width}", "{choice: [], name: width}"),
        ("{float: [1.0e-4, 3.0e-2], log: true, name: lr}", "{float: [3.0e-2, 1.0e-4], name: lr}"),
        ("{float: [1.0e-4, 3.0e-2], log: true, name: lr}", "{float: [0, 3.0e-2], log: true, name: lr}"),
    ],
)
def test_bad_dimensions_exit_2_with_field_path(write, edit, needle):
    path = write("s.yaml", SPACE.read_text().replace(edit, needle))
    out = subprocess.run([sys.executable, "-m", "archsearch", "validate", str(path)], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert ("model.layers[0].layers[0].out" in out.stderr) or ("train.lr" in out.stderr)
    assert "line " in out.stderr


@pytest.mark.parametrize(("key", "value"), [("search.sampler", "bayes"), ("search.pruner", "earlystop")])
def test_unknown_sampler_or_pruner_exit_2(tmp_path, key, value):
    out = subprocess.run([sys.executable, "-m", "archsearch", "run", str(SPACE), "--set", f"{key}={value}"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and f"{key}.name" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "studies").exists()


@pytest.mark.parametrize("url", ["postgresql://nobody@127.0.0.1:1/none", "sqlite:////proc/nope/x.db", "notaurl"])
def test_unreachable_storage_is_one_clear_error(tmp_path, url):
    out = subprocess.run([sys.executable, "-m", "archsearch", "run", str(SPACE), "--storage", url, "--trials", "1"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and url in out.stderr and "Traceback" not in out.stderr


def test_sample_prints_valid_specs_and_a_space_is_not_a_spec(tmp_path):
    out = subprocess.run([sys.executable, "-m", "archsearch", "sample", str(SPACE), "--n", "3"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.count("# sample") == 3 and "choice" not in out.stdout
    docs = out.stdout.split("\n---\n")
    assert len(docs) == 3
    for i, doc in enumerate(docs):  # each document is a spec file as it stands
        (tmp_path / f"s{i}.yaml").write_text(doc)
        assert load_spec(tmp_path / f"s{i}.yaml").model.num_classes == 10
    one = subprocess.run([sys.executable, "-m", "archsearch", "sample", str(SPACE), "--n", "1"],
                         capture_output=True, text=True)
    (tmp_path / "one.yaml").write_text(one.stdout)
    assert one.returncode == 0 and load_spec(tmp_path / "one.yaml").data.dataset == "digits"
    with pytest.raises(SpecError, match="search space"):
        load_spec(SPACE)


def test_multi_objective_pareto_front_and_accuracy_curve_pruning(tmp_path, monkeypatch):
    study = search(tmp_path, monkeypatch, "search.objectives=[val_metric, params]", "train.epochs=4",
                   "search.pruner={name: median, startup_trials: 2, warmup_epochs: 1}", trials=10)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    ok = [t for t in study.trials if t.user_attrs.get("status") == "ok"]
    assert all(t.values[1] == t.user_attrs["params"] for t in ok)
    front = study.best_trials
    assert front and all(t.user_attrs.get("status") == "ok" for t in front)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "the accuracy-curve median rule should prune in a multi-objective study"
    for t in pruned:  # pruned below the median of the others at that epoch
        assert 2 <= len(t.user_attrs["history"]) < 4


def test_ctrl_c_stops_cleanly_and_marks_the_running_trial(tmp_path):
    import signal
    import time

    # Ctrl-C as in a terminal: SIGINT handled even where pytest itself was started with it ignored
    # (a background job of a non-interactive shell), which `archsearch run` would inherit and honour
    proc = subprocess.Popen(
        [sys.executable, "-m", "archsearch", "run", str(SPACE), "--trials", "200", "--set", "train.epochs=200",
         "--set", "search.pruner.name=none"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    db = tmp_path / "studies" / "digits_cnn.db"
    deadline = time.time() + 60
    running: list[int] = []
    while time.time() < deadline and not running and proc.poll() is None:
        time.sleep(0.5)
        running = running_trials(db)
    assert running, proc.stderr.read() if proc.poll() is not None else "no trial started in 60 s"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    study = optuna.load_study(study_name="digits_cnn", storage=f"sqlite:///{db}")
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert study.trials[running[0]].state == TrialState.FAIL


def test_a_resolved_spec_that_already_trained_is_not_trained_again(tmp_path, monkeypatch):
    # a grid over two values: the third and fourth trials can only repeat the first two
    study = search(tmp_path, monkeypatch, "search.sampler.name=random", "train.epochs=2",
                   "model.layers.0.n=1", "model.layers.0.layers.0.out=8",
                   "model.layers.0.layers.1={type: batchnorm}", "model.layers.0.layers.2.fn=relu",
                   "train.optimizer=adam", "train.lr={choice: [0.001, 0.01], name: lr}", trials=6)
    twins = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert twins
    for t in twins:
        first = study.trials[t.user_attrs["duplicate_of"]]
        assert t.value == first.value and t.params == first.params
        assert (t.datetime_complete - t.datetime_start).total_seconds() < 1.0


def test_a_grid_search_visits_every_point_once(tmp_path, monkeypatch):
    # each trial makes its sampler anew (seeded by the trials so far for the other samplers): the
    # grid's order must not move with it, or a trial's grid_id names another trial's point
    study = search(tmp_path, monkeypatch, "search.sampler.name=grid", "search.pruner.name=none",
                   "train.epochs=1", "model.layers.0.n=1", "model.layers.0.layers.1={type: batchnorm}",
                   "model.layers.0.layers.2.fn=relu", "train.optimizer=adam",
                   "model.layers.0.layers.0.out={choice: [4, 8], name: width}",
                   "train.lr={choice: [0.001, 0.01], name: lr}", trials=4)
    points = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(points) == 4 and len(set(points)) == 4, points
    assert not [t for t in study.trials if "duplicate_of" in t.user_attrs]


def test_a_study_resumes_only_with_its_own_space_and_its_folder_is_not_shared(tmp_path, monkeypatch):
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "archsearch", "run", *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)

    first = cli(str(SPACE), "--trials", "2", "--set", "train.epochs=1")
    assert first.returncode == 0, first.stderr
    url = f"sqlite:///{tmp_path / 'studies' / 'digits_cnn.db'}"
    # another spec of the same name, and the same space with another fixed value: refused, nothing added
    for args, where in (([str(ROOT / "examples" / "digits_cnn.yaml"), "--trials", "3"], "model"),
                        ([str(SPACE), "--trials", "3", "--set", "train.epochs=2"], "train.epochs")):
        out = cli(*args)
        assert out.returncode == 2 and f"differs at {where}" in out.stderr and "--study NAME" in out.stderr, out.stderr
        assert len(optuna.load_study(study_name="digits_cnn", storage=url).trials) == 2
    # the search: section may change on resume
    again = cli(str(SPACE), "--trials", "3", "--set", "train.epochs=1", "--set", "search.pruner.name=none")
    assert again.returncode == 0 and "3 finished trial(s)" in again.stdout, again.stderr
    # the same name in another storage would share studies/digits_cnn/ (its trial_N.pt): refused before
    # the other database is even created
    kept = sorted(p.name for p in (tmp_path / "studies" / "digits_cnn").iterdir())
    other = cli(str(SPACE), "--trials", "1", "--set", "train.epochs=1", "--storage", "sqlite:///other.db")
    assert other.returncode == 2 and "another study named digits_cnn" in other.stderr, other.stderr
    assert not (tmp_path / "other.db").exists()
    assert sorted(p.name for p in (tmp_path / "studies" / "digits_cnn").iterdir()) == kept
    # a storage that cannot be opened is named as such, not blamed on the folder
    from archsearch.search.run import prepare_study

    monkeypatch.chdir(tmp_path)
    space = load_space(SPACE)
    for bad, says in (("foo://x", "NoSuchModuleError"), ("postgresql://u@127.0.0.1:1/db", "Connection refused"),
                      (f"sqlite:///{tmp_path / 'studies' / 'digits_cnn.db' / 'x.db'}", "is a file")):
        with pytest.raises(ArchsearchError, match=f"--storage {bad}: .*{says}"):
            prepare_study(space, SearchSpec.model_validate(space.section("search")), "digits_cnn", bad)
    renamed = cli(str(SPACE), "--trials", "1", "--set", "train.epochs=1", "--storage", "sqlite:///other.db",
                  "--study", "digits_other")
    assert renamed.returncode == 0, renamed.stderr
    # the project folder copied elsewhere: its studies/<name>/ still belongs to its studies/<name>.db
    import json
    import shutil

    from archsearch.search.study import check_study_dir

    copy = tmp_path.parent / f"{tmp_path.name}_copy"
    shutil.copytree(tmp_path / "studies", copy / "studies")
    monkeypatch.chdir(copy)
    default = "sqlite:///studies/digits_cnn.db"
    study = optuna.load_study(study_name="digits_cnn", storage=default)
    check_study_dir("digits_cnn", default, study)
    owner = copy / "studies" / "digits_cnn" / "study.json"
    assert json.loads(owner.read_text())["key"].startswith("sqlite:<studies>/digits_cnn.db#")
    with pytest.raises(ArchsearchError, match="another study named digits_cnn"):  # a file outside it is another
        check_study_dir("digits_cnn", f"sqlite:///{tmp_path / 'other.db'}", study)
    # the form study.json had before (the file's absolute path) still names it
    owner.write_text(json.dumps({"study": "digits_cnn", "key": f"sqlite:{(copy / 'studies' / 'digits_cnn.db').resolve()}#"
                                 f"{study._study_id}"}))
    check_study_dir("digits_cnn", default, study)


def test_the_live_eta_counts_only_trials_that_trained():
    import time

    from optuna.distributions import IntDistribution
    from optuna.trial import create_trial

    from archsearch.search.run import _LiveView

    study = optuna.create_study(direction="maximize")
    lines = []
    view = _LiveView(study, target=4, echo=lines.append)
    view.t0 = time.perf_counter() - 60.0  # one minute of searching so far
    for status, value in [("over_budget", 0.0), ("ok", 0.9)]:
        study.add_trial(create_trial(value=value, params={"w": 1}, distributions={"w": IntDistribution(1, 2)},
                                     user_attrs={"status": status, "val_metric": value}))
        view(study, study.trials[-1])
    assert "ETA -" in lines[0]  # nothing trained yet: no rate to extrapolate
    # 2 of 4 finished, but only one trained in that minute: 2 more trials take ~2 minutes, not 1
    assert lines[1].endswith("ETA 2.0 min")
