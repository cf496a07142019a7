"""`archsearch ablate` around the best trial of a real tiny digits study."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from archsearch.data.testsplit import held_out_reads
from archsearch.errors import ArchsearchError
from archsearch.search.ablation import ablate
from archsearch.search.study import best_ok_trials


def test_each_option_is_trained_around_the_best_trial_without_reading_test(digits_study):
    study = digits_study.study
    best = best_ok_trials(study, 1)[0]
    reads = held_out_reads()
    result = ablate(study, ["regularization"], seeds=2, device="cpu", echo=lambda s: None)
    assert held_out_reads() == reads, "the ablation read the test split"
    assert result.best_trial == best.number
    labels = [v.option for v in result.variants]
    assert labels == ["batchnorm", "dropout(p=0.1)"]
    own = [v for v in result.variants if v.is_best]
    assert len(own) == 1 and own[0].option == labels[best.params["regularization"]]
    assert all(len(v.values) == 2 for v in result.variants)
    # batch norm has parameters, dropout none: the variants really are different networks
    by = {v.option: v for v in result.variants}
    assert by["batchnorm"].params > by["dropout(p=0.1)"].params
    # the best trial's own option at the best trial's seed re-trains the best trial's spec
    # (same process, same seed: CPU training repeats itself exactly)
    seed = best.user_attrs["spec"]["train"]["seed"]
    assert seed == 0
    assert own[0].values[0] == pytest.approx(best.user_attrs["val_metric"], abs=1e-9)


def test_unknown_and_continuous_parameters_are_refused(digits_study):
    with pytest.raises(ArchsearchError, match="nope not in the study's space"):
        ablate(digits_study.study, ["nope"], seeds=1)
    with pytest.raises(ArchsearchError, match="lr is a float range"):
        ablate(digits_study.study, ["lr"], seeds=1)


def test_cli_prints_the_table_and_writes_json(digits_study, tmp_path):
    out = tmp_path / "ablation.json"
    r = subprocess.run([sys.executable, "-m", "archsearch", "ablate", "--study", "t", "--params", "depth,optimizer",
                        "--seeds", "1", "--out", str(out)], cwd=digits_study.root, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert [(v["param"], v["option"]) for v in data["variants"]] == [
        ("depth", "1"), ("depth", "2"), ("optimizer", "adam"), ("optimizer", "sgd")]
    own = [v for v in data["variants"] if v["best_trial_option"]]
    assert [v["param"] for v in own] == ["depth", "optimizer"]
    # the best trial's own options are one and the same network: trained once, reported twice
    assert own[0]["val"] == own[1]["val"] and r.stdout.count("(trained before)") == 1
    assert r.stdout.count("+0.00 pp") >= 2  # each parameter's reference
