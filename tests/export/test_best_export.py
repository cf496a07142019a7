"""`archsearch best --export` end to end on digits, as a user runs it (real subprocesses, SQLite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from archsearch.data.testsplit import held_out_reads, load_test
from archsearch.errors import ArchsearchError, TestSplitAccessError
from archsearch.search import run_search
from archsearch.spec.search import SearchSpec
from archsearch.spec.space import load_space
from tests.conftest import ROOT

SPACE = ROOT / "spaces" / "digits_cnn.yaml"


def cli(cwd: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archsearch", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where `archsearch run` has finished 6 digits trials (studies/digits_cnn.db)."""
    work = tmp_path_factory.mktemp("best")
    out = cli(work, "run", str(SPACE), "--trials", "6", "--set", "train.epochs=4")
    assert out.returncode == 0, out.stderr
    return work


@pytest.fixture(scope="module")
def exported(searched: Path) -> tuple[Path, subprocess.CompletedProcess]:
    out = cli(searched, "best", "--top", "2", "--seeds", "2", "--export", "out")
    assert out.returncode == 0, out.stderr
    return searched, out


FRESH = r"""
import json, sys, torch
from archsearch.data.testsplit import load_test
from archsearch.spec import load_spec
bundle = sys.argv[1]
pre = json.load(open(f"{bundle}/preprocess.json"))
spec = load_spec(f"{bundle}/spec.yaml")
source, _ = load_test(spec.data, pre["input_shape"], mean=pre["mean"], std=pre["std"])
model = torch.jit.load(f"{bundle}/model.ts").eval()
correct = 0
with torch.no_grad():
    for x, y in source.batches(256):
        correct += int((model(x).argmax(1) == y).sum())
print(correct, source.num_samples)
"""


def test_best_ranks_top_trials_over_seeds_and_exports_the_winner(exported):
    work, out = exported
    # the re-training trains on val too: its epoch lines say so
    assert "| val (trained on) loss" in out.stderr and "| val loss" not in out.stderr
    board = json.loads((work / "studies" / "digits_cnn" / "best" / "leaderboard.json").read_text())
    assert len(board["entries"]) == 2 and board["seeds"] == [0, 1]
    means = [e["test_accuracy"]["mean"] for e in board["entries"]]
    assert means == sorted(means, reverse=True)
    for e in board["entries"]:
        accs = [s["accuracy"] for s in e["per_seed"]]
        assert len(accs) == 2 and abs(sum(accs) / 2 - e["test_accuracy"]["mean"]) < 1e-12
        assert 0 <= e["test_accuracy"]["ci_low"] <= e["test_accuracy"]["mean"] <= e["test_accuracy"]["ci_high"] <= 1
    assert "winner #" in out.stdout and "paired" in out.stdout
    bundle = work / "out"
    names = {p.name for p in bundle.iterdir()}
    assert {"spec.yaml", "best.pt", "model.ts", "metrics.json", "preprocess.json", "README.md"} <= names
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert metrics["trial"] == board["entries"][0]["trial"]
    assert metrics["export"]["parity"]["torchscript"]["max_abs_diff"] <= 1e-4
    assert set(metrics["test"]["per_class"]) == {str(i) for i in range(10)}
    assert len(metrics["test_fingerprint"]) == 64 and metrics["search"]["trials"] == 6
    card = (bundle / "README.md").read_text()
    assert "torch.jit.load" in card and f"{100 * metrics['test']['accuracy']:.2f} %" in card
    assert "slightly optimistic" in card  # the winner was chosen among 2 on the test split
    assert not any(p.name.startswith(".out.") for p in work.iterdir()), "a temporary export folder was left behind"


def test_the_cards_preprocessing_works_on_the_raw_source_images(exported):
    """A user following preprocess.json on sklearn's own load_digits() images gets the model's accuracy
    (they are 0..16, not 8-bit: the bundle says how to scale them)."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    bundle = exported[0] / "out"
    pre = json.loads((bundle / "preprocess.json").read_text())
    assert "255 / 16" in pre["pixels"] and pre["pixels"] in (bundle / "README.md").read_text()
    d = load_digits()
    image = np.rint(d.images * 255 / 16)  # as pre["pixels"] says
    x = torch.tensor((image / 255 - pre["mean"][0]) / pre["std"][0], dtype=torch.float32).unsqueeze(1)
    model = torch.jit.load(str(bundle / "model.ts")).eval()
    with torch.no_grad():
        acc = float((model(x).argmax(1).numpy() == d.target).mean())
    assert acc > 0.9, acc  # the raw 0..16 values would give chance level


def test_the_report_of_a_bundle_shows_the_seeds_and_the_exported_weights_training(exported):
    import re

    from archsearch.report.write import report_html

    work, _ = exported
    metrics = json.loads((work / "out" / "metrics.json").read_text())
    study = optuna.load_study(study_name="digits_cnn", storage=f"sqlite:///{work / 'studies' / 'digits_cnn.db'}")
    text = re.sub(r"<[^>]+>", " ", report_html(study, bundle=work / "out", find_in=None))
    seeds = metrics["test_accuracy_over_seeds"]
    assert f"test accuracy over 2 seeds  {seeds['mean']:.4f} ± {seeds['std']:.4f}" in text
    assert f"(exported weights, seed {metrics['export']['seed']})  {metrics['test']['accuracy']:.4f}" in text
    assert f"({len(metrics['retrain_history'])} epochs, re-trained on train + val" in text


def test_exported_torchscript_reproduces_the_test_accuracy_in_a_fresh_process(exported):
    work, _ = exported
    out = subprocess.run([sys.executable, "-c", FRESH, str(work / "out")], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    correct, n = map(int, out.stdout.split())
    metrics = json.loads((work / "out" / "metrics.json").read_text())
    assert correct / n == metrics["test"]["accuracy"]  # exactly: same weights, same data, fp32 on the CPU


def test_onnx_export_matches_eager(exported):
    pytest.importorskip("onnxruntime")
    import numpy as np
    import onnxruntime as ort

    from archsearch.spec import load_spec

    work, _ = exported
    bundle = work / "out"
    pre = json.loads((bundle / "preprocess.json").read_text())
    spec = load_spec(bundle / "spec.yaml")
    source, _ = load_test(spec.data, pre["input_shape"], mean=pre["mean"], std=pre["std"])
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    correct = sum(int((session.run(None, {"input": x.numpy()})[0].argmax(1) == y.numpy()).sum())
                  for x, y in source.batches(100))
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert metrics["export"]["parity"]["onnx"]["opset"] >= 13
    assert abs(correct / source.num_samples - metrics["test"]["accuracy"]) <= 1 / source.num_samples
    assert not (bundle / "model.onnx.data").exists()
    assert np.isfinite(metrics["export"]["parity"]["onnx"]["max_abs_diff"])


def test_exported_spec_trains_and_reproduce_matches(exported):
    work, _ = exported
    out = cli(work, "train", "out/spec.yaml", "--out", "retrained", "--epochs", "1", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert (work / "retrained" / "best.pt").is_file()
    out = cli(work, "reproduce", "out")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "reproduced" in out.stdout and "same test split: yes" in out.stdout


def test_a_repeated_best_reuses_stored_results_and_export_refuses_an_existing_folder(exported):
    work, _ = exported
    before = json.loads((work / "studies" / "digits_cnn" / "best" / "leaderboard.json").read_text())
    out = cli(work, "best", "--top", "2", "--seeds", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("(stored)") == 4 and "re-trained" not in out.stdout
    after = json.loads((work / "studies" / "digits_cnn" / "best" / "leaderboard.json").read_text())
    strip = lambda entries: [{k: v for k, v in e.items() if k != "latency_ms"} for e in entries]  # noqa: E731
    assert strip(after["entries"]) == strip(before["entries"])  # latency is measured again
    stamp = (work / "out" / "metrics.json").stat().st_mtime_ns
    out = cli(work, "best", "--top", "2", "--seeds", "2", "--export", "out")
    assert out.returncode == 2 and "--force" in out.stderr and "Traceback" not in out.stderr
    assert (work / "out" / "metrics.json").stat().st_mtime_ns == stamp
    out = cli(work, "best", "--top", "2", "--seeds", "2", "--export", "out", "--force")
    assert out.returncode == 0, out.stderr
    assert (work / "out" / "model.ts").is_file()


def test_best_with_set_retrains_the_finalists_as_told_in_their_own_folder(exported):
    """Search short, re-train the finalists longer: `--epochs` / `--set` change the re-trained spec;
    those results are stored apart from the plain `best` ones, and the export records the setting."""
    work, _ = exported
    plain = (work / "studies" / "digits_cnn" / "best" / "leaderboard.json").read_bytes()
    out = cli(work, "best", "--top", "1", "--seeds", "1", "--epochs", "6", "--set", "train.batch_size=32",
              "--export", "long")
    assert out.returncode == 0, out.stderr
    assert "seed 0: re-training 6 epochs on train+val ..." in out.stdout
    assert out.stderr.count("epoch 6: train loss") == 1  # not a terminal: one line an epoch, no bar
    folder = work / "studies" / "digits_cnn" / "best-train.batch_size=32_train.epochs=6"
    board = json.loads((folder / "leaderboard.json").read_text())
    assert board["overrides"] == ["train.batch_size=32", "train.epochs=6"]
    run = json.loads((folder / "results.json").read_text())["runs"]
    (only,) = run.values()
    assert only["epochs"] == 6 and len(only["history"]) == 6
    assert (work / "studies" / "digits_cnn" / "best" / "leaderboard.json").read_bytes() == plain
    metrics = json.loads((work / "long" / "metrics.json").read_text())
    assert metrics["export"]["overrides"] == board["overrides"] and metrics["best_epoch"] == 6
    spec = (work / "long" / "spec.yaml").read_text()
    assert "epochs: 6" in spec and "batch_size: 32" in spec
    card = (work / "long" / "README.md").read_text()
    assert "`train.batch_size=32`" in card and "before the re-training's changes" in card
    assert "the test split chose nothing" in card  # --top 1: no choice among candidates on test


def reach_for_the_test_split(monkeypatch: pytest.MonkeyPatch, module) -> None:
    """Patch `module.prepare_train_val` to also load the test split, as a leaky change would."""
    real = module.prepare_train_val

    def leaky(spec, shape, **kw):
        data = real(spec, shape, **kw)
        load_test(spec, shape, mean=data.mean, std=data.std)
        return data

    monkeypatch.setattr(module, "prepare_train_val", leaky)


def test_best_select_ranks_the_finalists_on_val_after_re_training_and_tests_only_those_kept(exported):
    """`--select 1`: the top 3 are re-trained in the new setting on the train split and ranked on val;
    only the best of them is re-trained over seeds and meets the test split."""
    work, _ = exported
    out = cli(work, "best", "--top", "3", "--select", "1", "--seeds", "1", "--epochs", "5", "--export", "picked")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("re-training 5 epochs on the train split, to rank on val") == 3
    folder = work / "studies" / "digits_cnn" / "best-train.epochs=5"
    candidates = json.loads((folder / "selection.json").read_text())["runs"]
    assert len(candidates) == 3 and all(c["epochs"] == 5 and len(c["history"]) == 5 for c in candidates.values())
    top = max(candidates.values(), key=lambda c: c["val_metric"])  # stored in search order: ties go to the first
    board = json.loads((folder / "leaderboard.json").read_text())
    assert [e["trial"] for e in board["entries"]] == board["selection"]["kept"] == [top["trial"]]
    assert board["entries"][0]["selection_val"] == top["val_metric"]
    assert [c["trial"] for c in board["selection"]["candidates"]][0] == top["trial"]
    tested = json.loads((folder / "results.json").read_text())["runs"]
    assert len(tested) == 1 and next(iter(tested)).startswith(f"trial{top['trial']}/full/")
    assert f"kept #{top['trial']}" in out.stdout and "val (re-trained)" in out.stdout
    card = (work / "picked" / "README.md").read_text()
    assert "chosen on the validation split" in card and "unbiased" in card
    metrics = json.loads((work / "picked" / "metrics.json").read_text())
    assert metrics["leaderboard"]["selection"]["kept"] == [top["trial"]]
    again = cli(work, "best", "--top", "3", "--select", "1", "--seeds", "1", "--epochs", "5")
    assert again.returncode == 0 and again.stdout.count("(stored)") == 4 and "re-training 5 epochs" not in again.stdout


def test_the_selection_on_val_never_reads_the_test_split(searched, tmp_path, monkeypatch):
    import torch

    import archsearch.evaluate.best as best

    study = optuna.load_study(study_name="digits_cnn", storage=f"sqlite:///{searched / 'studies' / 'digits_cnn.db'}")
    trials = best.top_trials(study, 2)
    reads = held_out_reads()
    selection = best.select_on_val(trials, 1, ["train.epochs=1"], tmp_path, device=torch.device("cpu"),
                                   echo=lambda s: None)
    assert held_out_reads() == reads
    assert len(selection.candidates) == 2 and selection.kept == [selection.candidates[0].trial]
    assert selection.candidates[0].val_metric >= selection.candidates[1].val_metric

    reach_for_the_test_split(monkeypatch, best)
    with pytest.raises(TestSplitAccessError, match="--select"):
        best.select_on_val(trials, 1, ["train.epochs=1"], tmp_path, device=torch.device("cpu"), echo=lambda s: None,
                           redo=True)
    assert held_out_reads() == reads


def test_distinct_keeps_one_trial_per_network(searched, tmp_path):
    import copy
    import shutil

    import archsearch.evaluate.best as best

    shutil.copy(searched / "studies" / "digits_cnn.db", tmp_path / "copy.db")
    study = optuna.load_study(study_name="digits_cnn", storage=f"sqlite:///{tmp_path / 'copy.db'}")
    ranked = best.top_trials(study, 10)
    first = ranked[0]
    other = next(t for t in ranked if t.user_attrs["spec"]["model"] != first.user_attrs["spec"]["model"])
    # the leader's network again with another learning rate, just below it on val: a near-copy
    attrs = copy.deepcopy(first.user_attrs)
    attrs["spec"]["train"]["lr"] = attrs["spec"]["train"]["lr"] * 1.04
    attrs["val_metric"] = first.user_attrs["val_metric"] - 1e-6
    study.add_trial(optuna.trial.create_trial(state=first.state, values=first.values, params=first.params,
                                              distributions=first.distributions, user_attrs=attrs))
    clone = study.get_trials(deepcopy=False)[-1].number
    assert clone in [t.number for t in best.top_trials(study, 100)]
    distinct = best.top_trials(study, 100, distinct=True)
    assert clone not in [t.number for t in distinct]
    assert [t.number for t in distinct[:2]] == [first.number, other.number]
    models = [json.dumps(t.user_attrs["spec"]["model"], sort_keys=True) for t in distinct]
    assert len(models) == len(set(models))


def test_bad_input_is_one_clear_error(searched, tmp_path):
    out = cli(searched, "best", "--study", "nope")
    assert out.returncode == 2 and "digits_cnn" in out.stderr and "Traceback" not in out.stderr
    empty = optuna.create_study(study_name="empty", storage=f"sqlite:///{searched / 'studies' / 'empty.db'}")
    out = cli(searched, "best", "--study", "empty")
    assert out.returncode == 2 and "no trials yet" in out.stderr and "Traceback" not in out.stderr
    trial = empty.ask()  # a trial refused by the budget: the message says so
    trial.set_user_attr("status", "over_budget")
    empty.tell(trial, state=optuna.trial.TrialState.FAIL)
    out = cli(searched, "best", "--study", "empty")
    assert out.returncode == 2 and "1 trial(s): 1 over budget" in out.stderr and "search.budgets" in out.stderr, out.stderr
    (searched / "a_file").write_text("")
    out = cli(searched, "best", "--study", "digits_cnn", "--export", "a_file/bundle")
    assert out.returncode == 2 and "a_file" in out.stderr and "Traceback" not in out.stderr
    out = cli(searched, "best", "--study", "digits_cnn", "--retrain", "sometimes")
    assert out.returncode == 2 and "--retrain" in out.stderr
    out = cli(searched, "reproduce", str(tmp_path))
    assert out.returncode == 2 and "not an export bundle" in out.stderr


def test_bad_best_settings_are_refused_before_any_work(searched, monkeypatch):
    from typer.testing import CliRunner

    from archsearch.cli import app

    monkeypatch.chdir(searched)
    folders = set((searched / "studies" / "digits_cnn").iterdir())
    for args, says in ((["--set", "train.seed=4"], "--seeds"), (["--retrain", "reuse", "--epochs", "3"], "--retrain full"),
                       (["--set", "train.lr=fast"], "train.lr"), (["--set", "nonsense"], "key=value"),
                       (["--top", "2", "--select", "2"], "below --top"),
                       (["--retrain", "reuse", "--select", "1"], "--retrain full"),
                       (["--retrain", "reuse", "--seeds", "3"], "--retrain full"),
                       (["--set", "data.train_size=99999"], "data.train_size=99999"),  # more than digits has
                       (["--export", "studies", "--force"], "not an export bundle"),  # --force replaces bundles only
                       (["--export", ".", "--force"], "not an export bundle"),
                       (["--export", "/proc/archsearch_bundle"], "not writable")):  # root may "access" /proc
        result = CliRunner().invoke(app, ["best", "--study", "digits_cnn", *args])
        assert isinstance(result.exception, ArchsearchError) and says in str(result.exception), (args, result.exception)
    assert set((searched / "studies" / "digits_cnn").iterdir()) == folders  # nothing half-written
    assert (searched / "studies" / "digits_cnn.db").is_file()
    assert not list(searched.glob(".bundle.*")) and not list(searched.glob("a_file*/"))


def test_run_never_reads_the_test_split(tmp_path, monkeypatch):
    """Instrument the data layer: a search reads no test data, and code that tried to inside a
    search (here: the objective's data preparation, patched to reach for the test split) fails."""
    monkeypatch.chdir(tmp_path)
    space = load_space(SPACE, ["train.epochs=1"])
    search = SearchSpec.model_validate(space.section("search"))
    reads = held_out_reads()
    run_search(space, search, study_name="clean", trials=2, echo=lambda s: None)
    assert held_out_reads() == reads

    import archsearch.search.objective as objective

    reach_for_the_test_split(monkeypatch, objective)
    with pytest.raises(TestSplitAccessError, match="archsearch run"):
        run_search(space, search, study_name="leaky", trials=1, echo=lambda s: None)
    assert held_out_reads() == reads
