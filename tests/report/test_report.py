"""The HTML report on a real tiny digits study and a bundle made from a really trained model:
figure data read back from the page, the guards, the CLI, and a render in headless Chromium."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from archsearch.data.testsplit import held_out_reads, load_test
from archsearch.errors import ArchsearchError
from archsearch.evaluate import evaluate_run, load_run
from archsearch.evaluate.confused import confused_examples, most_confused
from archsearch.evaluate.metrics import classification_metrics
from archsearch.report.write import report_html, write_report
from archsearch.spec import parse_spec
from archsearch.train.loop import evaluate_source
from archsearch.train.run import train_run

FIG_DATA = re.compile(r'<script type="application/json" class="figure-data" data-target="([^"]+)">(.*?)</script>', re.S)
STUDY_FIGURES = {"optimization-history", "intermediate-values", "param-importances", "parallel-coordinates", "slices"}
BUNDLE_FIGURES = {"learning-curves", "confusion-counts", "confusion-normalised", "per-class"}


def _bundle(root: Path, study: optuna.Study) -> SimpleNamespace:
    """What `archsearch best --export` leaves: the winner trained, evaluated on test, written out."""
    ok = [t for t in study.trials if t.user_attrs.get("status") == "ok"]
    best = max(ok, key=lambda t: t.user_attrs["val_metric"])
    run = root / "run"
    result = train_run(parse_spec(best.user_attrs["spec"]), run, device="cpu", progress=False)
    test = evaluate_run(run, "test", device="cpu")
    spec, model, metrics = load_run(run)
    source, classes = load_test(spec.data, spec.model.input_shape, mean=metrics["normalization"]["mean"],
                                std=metrics["normalization"]["std"])
    preds = evaluate_source(model, source, spec.model.num_classes, spec.train.metric, torch.device("cpu")).predictions
    y_true, y_pred = source.labels.numpy(), preds.numpy()
    assert classification_metrics(y_true, y_pred, classes)["confusion_matrix"] == test["confusion_matrix"]
    pairs = most_confused(test["confusion_matrix"], 4)
    confused = confused_examples(source, y_true, y_pred, pairs, per_pair=5)
    folder = root / "exports" / "winner"  # `best --export exports/winner`
    (folder / "explain").mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(
        {"classes": classes, "test": test, "history": result.fit.history_dicts(), "trial": best.number,
         "search": {"study": study.study_name}}))
    np.savez(folder / "confused.npz", **confused)
    from PIL import Image  # a stand-in for a figure of `archsearch explain`

    Image.fromarray(np.tile(np.arange(0, 250, 2, dtype=np.uint8), (60, 1))).save(folder / "explain" / "filters.png")
    return SimpleNamespace(path=folder, test=test, history=result.fit.history_dicts(), classes=classes,
                           source=source, y_true=y_true, y_pred=y_pred, pairs=pairs, confused=confused)


@pytest.fixture(scope="module")
def searched(digits_study: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(root=digits_study.root, study=digits_study.study,
                           bundle=_bundle(digits_study.root, digits_study.study))


def figures(page: str) -> dict[str, dict]:
    return {k: json.loads(v) for k, v in FIG_DATA.findall(page)}


def arr(v: object) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {"dtype", "bdata"[, "shape"]}."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape([int(s) for s in str(v["shape"]).split(",")]) if "shape" in v else a
    return np.asarray(v)


# -- confused pairs ------------------------------------------------------------------------------
def test_most_confused_is_off_diagonal_largest_first():
    cm = [[9, 2, 0], [5, 7, 2], [0, 1, 8]]
    assert most_confused(cm, 3) == [(1, 0, 5), (0, 1, 2), (1, 2, 2)]
    assert most_confused(cm, 10) == [(1, 0, 5), (0, 1, 2), (1, 2, 2), (2, 1, 1)]  # zeros never
    assert most_confused(np.eye(3, dtype=int) * 4, 5) == []
    with pytest.raises(ValueError, match="square"):
        most_confused([[1, 2, 3]], 1)


def test_confused_examples_are_the_raw_images_of_each_pair(searched):
    b = searched.bundle
    everything = next(b.source.raw_batches(10**6, None))[0].numpy()
    c = b.confused
    assert c["images"].dtype == np.uint8 and c["images"].shape[1:] == everything.shape[1:]
    expected = np.concatenate([np.flatnonzero((b.y_true == t) & (b.y_pred == p))[:5] for t, p, _ in b.pairs])
    assert len(expected) and np.array_equal(c["images"], everything[expected])
    assert np.array_equal(c["true"], b.y_true[expected]) and np.array_equal(c["pred"], b.y_pred[expected])
    assert all(t != p for t, p in zip(c["true"], c["pred"]))
    with pytest.raises(ValueError, match="stored order"):
        confused_examples(b.source, b.y_true[::-1], b.y_pred, b.pairs)


# -- the page's figures ---------------------------------------------------------------------------
def test_report_figures_hold_the_study_and_bundle_data(searched, tmp_path):
    study, b = searched.study, searched.bundle
    reads = held_out_reads()
    out = write_report(study, tmp_path / "sub" / "report.html", bundle=b.path)
    assert held_out_reads() == reads, "the report read the test split"
    page = out.read_text()
    assert not list(out.parent.glob(".*.tmp"))
    from plotly.offline import get_plotlyjs

    assert page.count(get_plotlyjs()) == 1 and 'src="http' not in page  # plotly.js once, offline
    figs = figures(page)
    assert set(figs) == STUDY_FIGURES | BUNDLE_FIGURES

    trials = study.trials
    states = [t.user_attrs.get("status", t.state.name.lower()) for t in trials]
    # the seeded search gives every kind of trial the page draws (the counts follow from the sampler)
    assert states.count("ok") >= 2 and states.count("over_budget") >= 1 and states.count("pruned") >= 1
    assert len(states) == 6 and set(states) == {"ok", "over_budget", "pruned"}
    # optimisation history: one point per completed trial that trained (the over-budget one grey apart)
    history = {tr["name"]: tr for tr in figs["optimization-history"]["data"]}
    ok = [t for t in trials if t.user_attrs.get("status") == "ok"]
    assert list(arr(history["val accuracy"]["x"])) == [t.number for t in ok]
    assert np.allclose(arr(history["val accuracy"]["y"]), [t.value for t in ok])
    assert list(arr(history["Infeasible Trial"]["x"])) == [t.number for t in trials
                                                          if t.user_attrs.get("status") == "over_budget"]
    # intermediate values: every trained trial, pruned ones dashed and named with their epoch
    curves = {tr["name"]: tr for tr in figs["intermediate-values"]["data"]}
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    for t in pruned:
        tr = curves[f"trial {t.number} (pruned at epoch 1)"]
        assert tr["line"]["dash"] == "dash" and list(arr(tr["y"])) == [t.intermediate_values[1]]
    assert np.allclose(arr(curves[f"trial {ok[0].number}"]["y"]), [r["val_metric"] for r in ok[0].user_attrs["history"]])
    # importances: the parameters that vary between the two trained trials
    bars = figs["param-importances"]["data"][0]
    assert set(bars["y"]) >= {"lr", "optimizer"} and len(bars["y"]) == len(arr(bars["x"]))

    # the test part: exactly the bundle's numbers
    cm = figs["confusion-counts"]["data"][0]
    assert arr(cm["z"]).tolist() == b.test["confusion_matrix"]
    assert cm["x"] == b.classes and cm["y"] == b.classes
    norm = arr(figs["confusion-normalised"]["data"][0]["z"])
    counts = np.asarray(b.test["confusion_matrix"])
    assert np.allclose(norm, counts / counts.sum(axis=1, keepdims=True), atol=1e-4)
    bars = {tr["name"]: arr(tr["y"]) for tr in figs["per-class"]["data"]}
    assert np.allclose(bars["recall"], [b.test["per_class"][c]["recall"] for c in b.classes])
    lc = {tr["name"]: tr for tr in figs["learning-curves"]["data"]}
    assert list(arr(lc["train loss"]["x"])) == [1, 2, 3]
    assert np.allclose(arr(lc["val accuracy"]["y"]), [r["val_acc"] for r in b.history])

    # confused pairs: every example image embedded; the explain PNG byte for byte
    gallery = page[page.index('id="confused-pairs"'):page.index('id="explain"')]
    assert gallery.count("<img ") == len(b.confused["images"])
    t, p, n = b.pairs[0]
    assert f"true {t} → predicted {p}: {n} test image(s)" in gallery
    png = base64.b64encode((b.path / "explain" / "filters.png").read_bytes()).decode()
    assert f'src="data:image/png;base64,{png}"' in page
    # the trials table: one row per trial with its status and reason
    table = page[page.index('id="trials-table"'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr") == 1 + len(trials)
    assert "max_params" in table and "pruned at epoch 1" in table
    # a choice of sub-stacks (stored by Optuna as an index) is named by its option, as insights names it
    picked = [t.params["regularization"] for t in trials if "regularization" in t.params]
    assert picked and "regularization=0" not in table and "regularization=1" not in table
    assert table.count("regularization=batchnorm") + table.count("regularization=dropout(p=0.1)") == len(picked)


def test_the_study_bundle_is_found_below_the_folder(searched, tmp_path):
    page = report_html(searched.study, find_in=searched.root)
    assert BUNDLE_FIGURES <= set(figures(page)) and "exports/winner" in page
    assert page.count("exported: its test results are below") == 1
    page = report_html(searched.study, find_in=tmp_path)  # no bundle here: the search part alone
    assert set(figures(page)) == STUDY_FIGURES and "no export bundle found" in page


def test_thin_studies_get_notes_instead_of_figures(tmp_path):
    empty = optuna.create_study(study_name="empty")
    page = report_html(empty, find_in=None)
    assert figures(page) == {} and "no trial has completed yet" in page
    one = optuna.create_study(study_name="one", direction="maximize")
    one.add_trial(optuna.trial.create_trial(
        params={"lr": 0.01}, distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)},
        value=0.9, intermediate_values={1: 0.8, 2: 0.9}, user_attrs={"status": "ok", "val_metric": 0.9}))
    page = report_html(one, find_in=None)
    assert "param-importances" not in figures(page)
    assert "Parameter importances need at least two trials" in page and "1 trial(s) trained" in page


def test_bad_bundle_is_one_clear_error(searched, tmp_path):
    with pytest.raises(ArchsearchError, match="no metrics.json"):
        report_html(searched.study, bundle=tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"classes": ["a"], "history": []}))
    with pytest.raises(ArchsearchError, match="lacks test"):
        report_html(searched.study, bundle=tmp_path)
    (tmp_path / "best.pt").write_bytes(b"")  # a run folder of `archsearch train` is named as such
    with pytest.raises(ArchsearchError, match="a run directory of `archsearch train`, not an export bundle"):
        report_html(searched.study, bundle=tmp_path)


def test_multi_objective_study_has_a_pareto_front(searched):
    # the real trials, as a two-objective study (val metric up, params down) would have recorded them
    mo = optuna.create_study(study_name="mo", directions=["maximize", "minimize"])
    for t in searched.study.trials:
        values = [t.value, float(t.user_attrs["params"])] if t.state == TrialState.COMPLETE else None
        mo.add_trial(optuna.trial.create_trial(state=t.state, values=values, params=t.params,
                                               distributions=t.distributions, user_attrs=t.user_attrs,
                                               system_attrs=t.system_attrs))
    page = report_html(mo, find_in=None)
    figs = figures(page)
    assert {"pareto-front", "intermediate-values", "optimization-history"} <= set(figs)
    assert "val accuracy (maximize), params (minimize)" in page
    front = sorted(t.number for t in mo.best_trials if t.user_attrs["status"] == "ok")
    best = [tr for tr in figs["pareto-front"]["data"] if "Best Trial" in json.dumps(tr["marker"])]
    assert len(best) == 1 and sorted(arr(best[0]["marker"]["color"]).tolist()) == front
    # no intermediate values in a multi-objective study: the curves come from the histories
    curves = {tr["name"] for tr in figs["intermediate-values"]["data"]}
    trained = [t for t in mo.trials if t.user_attrs.get("status") in ("ok", "pruned")]
    assert len(curves) == sum(bool(t.user_attrs.get("history")) for t in mo.trials) == len(trained)
    assert sum("pruned at epoch 1" in c for c in curves) == sum(t.state == TrialState.PRUNED for t in mo.trials) >= 1


# -- the command ----------------------------------------------------------------------------------
def test_report_command(searched, tmp_path):
    run = subprocess.run([sys.executable, "-m", "archsearch", "report", "--out", str(tmp_path / "r.html")],
                         cwd=searched.root, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("r.html") and BUNDLE_FIGURES <= set(figures((tmp_path / "r.html").read_text()))
    assert "bundle: exports/winner (the study's newest export here" in run.stdout  # which one it found is said


def test_report_command_errors_name_the_studies(searched, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from archsearch.cli import app

    monkeypatch.chdir(searched.root)
    result = CliRunner().invoke(app, ["report", "--study", "nope"])
    assert isinstance(result.exception, ArchsearchError)
    assert "--study nope" in str(result.exception) and "studies/: t)" in str(result.exception)
    assert not (searched.root / "studies" / "nope.db").exists()  # no empty database left behind
    url = f"sqlite:///{tmp_path / 'two.db'}"
    for name in ("a", "b"):
        optuna.create_study(study_name=name, storage=url)
    result = CliRunner().invoke(app, ["report", "--storage", url, "--out", str(tmp_path / "r.html")])
    assert isinstance(result.exception, ArchsearchError) and "holds 2 studies (a, b)" in str(result.exception)
    assert not (tmp_path / "r.html").exists()
    result = CliRunner().invoke(app, ["report", "--storage", url, "--study", "b", "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0 and "Search" in (tmp_path / "r.html").read_text()


# -- the page in a browser ------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
         "--v=0", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian package `chromium`)")
def test_report_renders_in_chromium(searched, tmp_path):
    out = write_report(searched.study, tmp_path / "report.html", bundle=searched.bundle.path)
    ids = list(figures(out.read_text()))
    dom = chromium(tmp_path, out, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_errors(dom.stderr) == []
    assert f'data-figures-drawn="{len(ids)}/{len(ids)}"' in dom.stdout
    for fid in ids:  # plotly drew into every figure div
        start = dom.stdout.index(f'id="{fid}"')
        div = dom.stdout[dom.stdout.rindex("<div", 0, start):start]
        assert "js-plotly-plot" in div, fid
        assert 'class="main-svg"' in dom.stdout[start:start + 20000], fid
    assert re.search(r'<div id="report-errors" hidden="">.*?<ul></ul>', dom.stdout, re.S)

    shot = tmp_path / "report.png"
    run = chromium(tmp_path, out, "--window-size=1400,7000", f"--screenshot={shot}")
    assert run.returncode == 0 and console_errors(run.stderr) == []
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 7000)
    print(f"screenshot: {shot}")
    colors = image.resize((350, 1750)).getcolors(maxcolors=1_000_000)
    assert colors is not None and len(colors) > 200  # figures, not a blank page


def test_the_page_embeds_the_figures_of_the_last_explain_only(searched, tmp_path):
    """`explain --only X` rewrites explain.json for X alone; an older PNG beside it is not embedded."""
    from archsearch.report.bundle import load_bundle

    bundle = tmp_path / "b"
    shutil.copytree(searched.bundle.path, bundle)
    assert [name for name, _ in load_bundle(bundle).explain] == ["filters.png"]  # no explain.json: every PNG
    shutil.copy(bundle / "explain" / "filters.png", bundle / "explain" / "gradcam.png")  # an older run's figure
    (bundle / "explain" / "explain.json").write_text(json.dumps({"figures": [{"name": "filters", "file": "filters.png"}]}))
    assert [name for name, _ in load_bundle(bundle).explain] == ["filters.png"]
