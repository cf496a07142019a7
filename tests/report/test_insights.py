"""`archsearch insights` on a real tiny digits study: per-choice numbers checked against the trials."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from optuna.trial import TrialState

from archsearch.report.insights import choice_rows, importances, option_label


@pytest.fixture
def study(digits_study):
    return digits_study.root, digits_study.study


def test_each_choice_is_compared_over_every_trial_that_trained(study):
    _, st = study
    trained = [t for t in st.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.user_attrs.get("history")]
    ok = [t for t in trained if t.state == TrialState.COMPLETE and t.user_attrs.get("status") == "ok"]
    assert any(t.state == TrialState.PRUNED for t in trained) and len(ok) >= 2
    rows = choice_rows(st, epoch=1)
    by_param: dict[str, list] = {}
    for r in rows:
        by_param.setdefault(r.param, []).append(r)
    assert {"optimizer", "regularization", "activation"} <= set(by_param)
    for param, group in by_param.items():  # every trial counted once per parameter, pruned ones at epoch 1
        assert sum(r.early_n for r in group) == len(trained), param
        assert sum(r.final_n for r in group) == len(ok), param
    # the layer-list choice is named by its option, not by Optuna's index
    assert {r.value for r in by_param["regularization"]} <= {"batchnorm", "dropout(p=0.1)"}
    for r in by_param["optimizer"]:
        took = [t for t in trained if t.params["optimizer"] == r.value]
        first = [t.user_attrs["history"][0]["val_metric"] for t in took]
        assert r.early_best == pytest.approx(max(first))
        finals = [t.user_attrs["val_metric"] for t in took if t in ok]
        assert r.final_best == (pytest.approx(max(finals)) if finals else None)


def test_importances_cover_the_varying_parameters(study):
    _, st = study
    imp = importances(st)
    assert imp and set(imp) <= set(st.trials[0].params) | {p for t in st.trials for p in t.params}
    assert math.isclose(sum(imp.values()), 1.0, rel_tol=1e-6)


def test_option_labels():
    assert option_label([]) == "none"
    assert option_label([{"type": "dropout2d", "p": 0.1}]) == "dropout2d(p=0.1)"
    assert option_label([{"type": "repeat", "n": 2, "layers": [{"type": "conv2d", "out": 8}]}]) == \
        "repeat(n=2)[conv2d(out=8)]"


def test_cli_prints_both_tables_and_names_a_missing_storage(study):
    root, _ = study
    out = subprocess.run([sys.executable, "-m", "archsearch", "insights", "--study", "t"], cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "parameter importances" in out.stdout and "by choice" in out.stdout and "batchnorm" in out.stdout
    late = subprocess.run([sys.executable, "-m", "archsearch", "insights", "--study", "t", "--epoch", "99"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert late.returncode == 2 and "--epoch 99: no trial of t trained that long" in late.stderr, late.stderr
    assert late.stdout == ""  # refused before any table
    bad = subprocess.run([sys.executable, "-m", "archsearch", "insights", "--storage", "sqlite:///nope/x.db"],
                         cwd=root, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "nope/x.db" in bad.stderr
    for cmd in (["insights"], ["status"], ["best"], ["report"]):  # a mistyped file: an error, no empty database left
        typo = subprocess.run([sys.executable, "-m", "archsearch", *cmd, "--storage", "sqlite:///typo.db"],
                              cwd=root, capture_output=True, text=True, timeout=120)
        assert typo.returncode == 2 and "typo.db does not exist" in typo.stderr, (cmd, typo.stderr)
        assert not (root / "typo.db").exists()
    nope = subprocess.run([sys.executable, "-m", "archsearch", "status", "--studies-dir", "nope"],
                          cwd=root, capture_output=True, text=True, timeout=120)
    assert nope.returncode == 2 and "nope" in nope.stderr
