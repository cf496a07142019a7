"""The CLI as a user runs it: real subprocesses, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "archsearch", *args], capture_output=True, text=True, cwd=ROOT, timeout=120, **kw
    )


def test_help_is_fast_and_does_not_import_torch():
    code = (
        "import sys, time; t = time.perf_counter(); sys.argv = ['archsearch', '--help']\n"
        "from archsearch.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'optuna' not in sys.modules, 'optuna imported'\n"
        "print('elapsed', time.perf_counter() - t)"
    )
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    wall = time.perf_counter() - t
    assert out.returncode == 0, out.stderr
    assert "validate" in out.stdout
    assert wall < 3.0  # interpreter start included; the import itself is well under a second


def test_reading_a_study_does_not_load_the_trainer(tmp_path):
    """status, and best/report on a missing study, answer in well under a second: no torch import."""
    import optuna

    (tmp_path / "studies").mkdir()
    st = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/studies/s.db", direction="maximize")
    t = st.ask()
    t.set_user_attr("status", "ok")
    t.set_user_attr("val_metric", 0.75)
    st.tell(t, 0.75)
    code = (
        "import sys\n"
        "from archsearch.cli import main\n"
        "for argv in (['status'], ['best', '--study', 'nope'], ['report', '--study', 'nope']):\n"
        "    sys.argv = ['archsearch', *argv]\n"
        "    try:\n        main()\n    except SystemExit as e:\n        print('exit', e.code, flush=True)\n"
        "    assert 'torch' not in sys.modules, f'{argv}: torch imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "0.75" in out.stdout and out.stdout.count("exit 2") == 2, out.stdout
    assert out.stderr.count("--study nope: studies/nope.db does not exist") == 2, out.stderr


def test_command_list_gives_each_command_one_line_when_it_fits():
    """Docstrings wrap in the source; the command list must not keep those breaks."""
    out = run("--help", env={**os.environ, "COLUMNS": "400"})
    rows = [line for line in out.stdout.splitlines() if line.startswith("│ ")]
    names = [r.split()[1] for r in rows if r[2] != " "]
    assert "validate" in names and "insights" in names
    assert len(rows) == len(names), "\n".join(rows)


def test_validate_all_examples():
    out = run("validate", *map(str, EXAMPLES))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("ok:") == len(EXAMPLES)
    # S4's art folder is the user's to provide: a note, not an error
    assert out.stderr.count("note: data.path") == sum("s4_" in p.name for p in EXAMPLES) > 0, out.stderr


@pytest.mark.parametrize("setting, says", [
    ("search.storage=foo://x", "search.storage: not a usable storage URL"),
    ("search.storage=postgress://u@h/db", "unknown database 'postgress'; did you mean 'postgresql'?"),
    ("search.budgets.gpu_memory=4", "less than 1 MiB"),  # a bare number is bytes: 4 meant 4 GiB
])
def test_validate_refuses_a_storage_url_or_budget_that_cannot_be_meant(setting, says):
    out = run("validate", str(ROOT / "spaces" / "digits_cnn.yaml"), "--set", setting)
    assert out.returncode == 2 and says in out.stderr and f"--set {setting}" in out.stderr, out.stderr


def test_a_budget_that_every_extreme_breaks_is_warned_about_by_validate_and_run(tmp_path):
    space = str(ROOT / "spaces" / "digits_cnn.yaml")
    out = run("validate", space, "--set", "search.budgets.max_params=100")
    assert out.returncode == 0, out.stderr  # a warning: points between the extremes might still fit
    assert "every extreme spec checked is over budget" in out.stderr and "> max_params 100" in out.stderr
    from archsearch.search.budget import over_budget_everywhere
    from archsearch.spec.space import load_space

    assert over_budget_everywhere(load_space(space, ["search.budgets.max_params=5300"])) is None  # small widths fit
    assert "all low: 1,386 parameters > max_params 1,000" in over_budget_everywhere(
        load_space(space, ["search.budgets.max_params=1000"]))
    out = subprocess.run([sys.executable, "-m", "archsearch", "run", space, "--trials", "1", "--set",
                          "search.budgets.max_params=100"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "warning: every extreme spec checked is over budget" in out.stdout
    assert "1 over budget" in out.stdout  # and the one trial is indeed refused


def test_validate_lists_every_error_and_exits_2(write):
    bad = write("bad.yaml", "model:\n  input: [1, 28, 28]\n  layers:\n    - {type: conv3d, out: 4}\n    - {type: linear, out: -1}\n")
    good = EXAMPLES[0]
    out = run("validate", str(good), str(bad))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "line 4: model.layers[0]: unknown type 'conv3d'" in out.stderr
    assert "line 5: model.layers[1].out" in out.stderr
    assert "ok:" in out.stdout


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("model: !!python/object/apply:os.system ['true']\n", "not allowed"),
        ("model:\n  num_classes: 3\n  num_classes: 4\n", "duplicate key"),
        ("model: [unclosed\n", "invalid YAML"),
    ],
)
def test_bad_yaml_exit_2_without_traceback(write, text, needle):
    out = run("validate", str(write("x.yaml", text)))
    assert out.returncode == 2 and needle in out.stderr and "Traceback" not in out.stderr


def test_summary_prints_layers_and_totals():
    s1 = next(p for p in EXAMPLES if p.stem == "s1_customnet")
    out = run("summary", str(s1), "--batch-size", "64")
    assert out.returncode == 0, out.stderr
    assert "155,850" in out.stdout and "[128, 7, 7]" in out.stdout and "batch 64" in out.stdout
    assert "FLOPs" in out.stdout


def test_summary_of_missing_weights_exit_2(write, tmp_path):
    spec = write("r.yaml", "model:\n  backbone: {name: resnet18, pretrained: missing.pth}\n")
    out = run("summary", str(spec))
    assert out.returncode == 2 and "weights file not found" in out.stderr and "Traceback" not in out.stderr
    # ImageNet weights are not needed for shapes and counts: no download, offline or not
    env = {**__import__("os").environ, "TORCH_HOME": str(tmp_path / "empty_torch_cache")}
    imagenet = write("i.yaml", "model:\n  backbone: {name: resnet18, pretrained: imagenet}\n")
    out = run("summary", str(imagenet), env=env)
    assert out.returncode == 0 and "not loaded" in out.stdout, out.stderr
    assert not (tmp_path / "empty_torch_cache").exists()
    plain = run("summary", str(write("n.yaml", "model:\n  backbone: {name: resnet18}\n")))
    params = next(line for line in plain.stdout.splitlines() if line.startswith("params "))
    assert params in out.stdout  # the same network, counted without its weights


def test_set_override_reaches_the_model():
    s1 = next(p for p in EXAMPLES if p.stem == "s1_customnet")
    out = run("summary", str(s1), "--set", "model.layers.0.out=16")
    assert out.returncode == 0 and "[16, 28, 28]" in out.stdout


def test_schema_is_json_schema_of_the_spec(tmp_path):
    out = run("schema", "--out", str(tmp_path / "s.json"))
    assert out.returncode == 0
    schema = json.loads((tmp_path / "s.json").read_text())
    assert "model" in schema["properties"] and "conv2d" in json.dumps(schema)
    assert "IntDimension" not in json.dumps(schema)
    out = run("schema", "--space")
    assert out.returncode == 0 and "IntDimension" in json.loads(out.stdout)["$defs"]
    for bad, says in ((tmp_path, "is a folder"), (Path("/proc/archsearch/s.json"), "--out")):
        out = run("schema", "--out", str(bad))
        assert out.returncode == 2 and says in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_train_then_evaluate_from_the_command_line(tmp_path):
    digits = ROOT / "examples" / "digits_cnn.yaml"
    out = run("train", str(digits), "--epochs", "3", "--out", str(tmp_path / "run"), "--no-progress",
              "--set", "train.lr=0.005")
    assert out.returncode == 0, out.stderr
    assert "best epoch" in out.stdout and (tmp_path / "run" / "best.pt").is_file()
    spec_text = (tmp_path / "run" / "spec.yaml").read_text()
    assert "epochs: 3" in spec_text and "lr: 0.005" in spec_text
    again = run("train", str(digits), "--epochs", "1", "--out", str(tmp_path / "run"))
    assert again.returncode == 2 and "--force" in again.stderr
    ev = run("evaluate", str(tmp_path / "run"))
    assert ev.returncode == 0, ev.stderr
    assert "macro P/R/F1" in ev.stdout and "ms/image" in ev.stdout
    assert json.loads((tmp_path / "run" / "eval_test.json").read_text())["split"] == "test"
    # --force replaces the earlier run's outputs (no stale evaluation beside the new model), not the user's files
    from archsearch.errors import ArchsearchError
    from archsearch.spec import load_spec
    from archsearch.train.run import train_run

    forced = tmp_path / "forced"
    shutil.copytree(tmp_path / "run", forced)
    (forced / "notes.txt").write_text("mine")
    train_run(load_spec(digits, ["train.epochs=1"]), forced, device="cpu", progress=False, force=True)
    assert not (forced / "eval_test.json").exists() and (forced / "notes.txt").read_text() == "mine"
    assert json.loads((forced / "metrics.json").read_text())["epochs_run"] == 1
    # --out that is a file, or under one: refused before the data is read (the dataset path does not exist)
    missing = load_spec(digits, ["data.dataset=image_folder", f"data.path={tmp_path / 'no_such_folder'}"])
    for bad in (forced / "notes.txt", forced / "notes.txt" / "run"):
        with pytest.raises(ArchsearchError, match="--out.* is a file"):
            train_run(missing, bad, device="cpu", progress=False)
    # a damaged run folder: one error naming the file, for each command that reads it
    for name, junk in (("metrics.json", "{bad"), ("best.pt", "not a checkpoint")):
        broken = tmp_path / f"broken_{name}"
        shutil.copytree(tmp_path / "run", broken)
        (broken / name).write_text(junk)
        for cmd in ("evaluate", "explain"):
            out = run(cmd, str(broken))
            assert out.returncode == 2 and name in out.stderr and "Traceback" not in out.stderr, (cmd, out.stderr)


def test_a_run_is_evaluated_without_the_weights_file_its_training_started_from(tmp_path):
    import torch
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    (tmp_path / "spec.yaml").write_text(
        "model:\n  input: [1, 8, 8]\n  num_classes: 10\n"
        "  backbone: {name: resnet18, pretrained: r18.pth, small_input: true, freeze: [layer1]}\n"
        "data: {dataset: digits, train_size: 200, val_size: 100}\ntrain: {epochs: 1, batch_size: 64}\n")
    out = run("train", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    (tmp_path / "r18.pth").rename(tmp_path / "elsewhere.pth")
    out = run("evaluate", str(tmp_path / "run"), "--split", "test")
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "run" / "eval_test.json").read_text())["accuracy"] > 0.1


def test_num_classes_must_match_the_data(tmp_path):
    out = run("train", str(ROOT / "examples" / "digits_cnn.yaml"), "--set", "model.num_classes=3",
              "--out", str(tmp_path / "r"))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "model.num_classes is 3 but the data has 10 classes" in out.stderr and not (tmp_path / "r").exists()
    space = tmp_path / "space.yaml"
    space.write_text((ROOT / "spaces" / "digits_cnn.yaml").read_text().replace("num_classes: 10", "num_classes: 11"))
    out = subprocess.run([sys.executable, "-m", "archsearch", "run", str(space)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    line = next(i for i, t in enumerate(space.read_text().splitlines(), 1) if "num_classes" in t)
    assert out.returncode == 2 and f"space.yaml: line {line}: model.num_classes is 11" in out.stderr, out.stderr
    assert not (tmp_path / "studies").exists() or not list((tmp_path / "studies").glob("*.db"))


def test_missing_dataset_says_where_it_looked(tmp_path):
    env = {**__import__("os").environ, "ARCHSEARCH_DATA": str(tmp_path), "ARCHSEARCH_OFFLINE": "1",
           "ARCHSEARCH_CACHE": str(tmp_path / "cache")}
    s1 = next(p for p in EXAMPLES if p.stem == "s1_customnet")
    out = run("train", str(s1), "--set", "data.dataset=mnist", "--out", str(tmp_path / "r"), env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert str(tmp_path) in out.stderr and not (tmp_path / "r").exists()


def test_a_path_where_a_name_or_folder_belongs_is_refused(tmp_path):
    space = ROOT / "spaces" / "digits_cnn.yaml"
    out = subprocess.run([sys.executable, "-m", "archsearch", "run", str(space), "--study", "../escape"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and "not a path" in out.stderr and not list(tmp_path.parent.glob("escape*"))
    digits = next(p for p in EXAMPLES if p.stem == "digits_cnn")
    out = run("train", str(digits), "--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "r"))
    assert out.returncode == 2 and "nope" in out.stderr and not (tmp_path / "r").exists()


def test_evaluate_rejects_a_folder_that_is_not_a_run(tmp_path):
    out = run("evaluate", str(tmp_path))
    assert out.returncode == 2 and "not a finished run directory" in out.stderr
    out = run("evaluate", str(tmp_path / "nope"))
    assert out.returncode == 2 and "no such run directory" in out.stderr, out.stderr
