"""What the report shows: the study and the bundle → sections of figures, tables and notes.

Every figure that needs more than the study holds (importances need two finished trials with a
varying parameter, a Pareto front needs two objectives, ...) becomes a note saying why instead.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from archsearch.evaluate.confused import most_confused
from archsearch.report import figures as F
from archsearch.report.bundle import Bundle
from archsearch.report.html import FigureBlock, GalleryBlock, NoteBlock, Section, TableBlock
from archsearch.report.images import data_uri, image_uri
from archsearch.report.records import (TrialRow, metric_name, objective_names, ok_trials, pruned_epochs,
                                       status_counts, trial_rows, val_curves, varying_params)

CONFUSED_PAIRS = 6  # pairs shown when the bundle has no confused.npz choosing them


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def study_facts(study: optuna.Study) -> list[tuple[str, str]]:
    counts = status_counts(study)
    names = objective_names(study)
    objectives = ", ".join(f"{n} ({d.name.lower()})" for n, d in zip(names, study.directions))
    facts = [("study", study.study_name), ("objectives", objectives),
             ("trials", f"{sum(counts.values())} ({', '.join(f'{n} {s}' for s, n in counts.items()) or 'none'})")]
    ok = ok_trials(study)
    if ok:
        best = max(ok, key=lambda t: t.user_attrs.get("val_metric", t.values[0]))
        facts.append(("best trial", f"#{best.number}: {metric_name(study)} "
                                    f"{best.user_attrs.get('val_metric', best.values[0]):.4f}"))
    return facts


def study_sections(study: optuna.Study, winner: int | None = None) -> list[Section]:
    """The search section (Optuna's plots, guarded) and the trials table (`winner`: the exported trial)."""
    multi = len(study.directions) > 1
    names = objective_names(study)
    target, target_name = F.value_target(study, 0), names[0]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ok = ok_trials(study)
    blocks: list = []
    if complete:
        caption = (f"{target_name} of every completed trial in order; over-budget and failed trials (placeholder "
                   "values) are grey." + ("" if multi else " The line is the best so far."))
        blocks.append(FigureBlock("optimization-history", "Optimisation history",
                                  F.history_figure(study, target, target_name), caption))
    else:
        blocks.append(NoteBlock("Optimisation history: no trial has completed yet."))
    pruned = pruned_epochs(study)
    curves = val_curves(study) if multi else None
    if (curves if multi else any(t.intermediate_values for t in study.get_trials(deepcopy=False))):
        blocks.append(FigureBlock("intermediate-values", "Validation curves and pruning",
                                  F.intermediate_figure(study, pruned, curves, metric_name(study)),
                                  f"{metric_name(study)} each epoch of every trial; {len(pruned)} pruned trial(s) "
                                  "dashed red, × where the pruner stopped them."))
    else:
        blocks.append(NoteBlock("Validation curves: no trial has reported an epoch yet."))
    varying = varying_params(ok)
    if len(ok) >= 2 and varying:
        blocks.append(FigureBlock("param-importances", "Parameter importances",
                                  F.importance_figure(study, target_name, 0, len(varying)),
                                  f"How much each parameter explains {target_name} among the {len(ok)} trials "
                                  "that trained to the end (Optuna's default evaluator)."))
    else:
        why = (f"{len(ok)} trial(s) trained to the end" if len(ok) < 2
               else "no parameter took two different values among them")
        blocks.append(NoteBlock(f"Parameter importances need at least two trials that trained to the end and a "
                                f"parameter that varies between them; {why}."))
    if complete and any(t.params for t in complete):
        blocks.append(FigureBlock("parallel-coordinates", "Parallel coordinates",
                                  F.parallel_figure(study, target, target_name),
                                  "Each line a completed trial: its parameters and its value."))
        blocks.append(FigureBlock("slices", "Slices", F.slice_figure(study, target, target_name),
                                  f"{target_name} against each parameter; colour = trial number."))
    else:
        blocks.append(NoteBlock("Parallel coordinates and slices: no completed trial with parameters yet."))
    if multi:
        if ok:
            blocks.append(FigureBlock("pareto-front", "Pareto front", F.pareto_figure(study, names),
                                      "Trials no other trial beats on every objective, against the dominated ones."))
        else:
            blocks.append(NoteBlock("Pareto front: no trial has trained to the end yet."))
    return [Section("search", "Search", blocks, f"Study {study.study_name}: how the search went."),
            Section("trials", "Trials", [trials_table(trial_rows(study), names, study, winner)])]


def trials_table(rows: list[TrialRow], names: list[str], study: optuna.Study, winner: int | None = None) -> TableBlock:
    ok = [r for r in rows if r.status == "ok" and r.val_metric is not None]
    best = max(ok, key=lambda r: r.val_metric).number if ok else None
    from archsearch.report.insights import option_labels

    labels = option_labels(study)  # options Optuna stores by index (sub-stacks), named as `insights` names them

    def shown(k: str, v: object) -> str:
        names_k = labels.get(k, ())
        return names_k[v] if isinstance(v, int) and 0 <= v < len(names_k) else _fmt(v)

    headers = ["#", "state", "status", *names, "epochs", "model params", "seconds", "parameters", "reason"]
    body, classes = [], []
    for r in rows:
        placeholder = r.values is None or r.status not in ("ok", "pruned")  # over budget, failed: worst values
        values = ["-"] * len(names) if placeholder else [_fmt(v) for v in r.values]
        params = ", ".join(f"{k}={shown(k, v)}" for k, v in sorted(r.hyperparams.items()))
        reason = "exported: its test results are below" if r.number == winner else r.reason
        body.append([str(r.number), r.state.lower(), r.status, *values, str(r.epochs),
                     f"{r.model_params:,}" if r.model_params is not None else "-",
                     f"{r.seconds:.1f}" if r.seconds is not None else "-", params, reason])
        classes.append("best" if r.number == best else "pruned" if r.state == "PRUNED"
                       else "failed" if r.status not in ("ok", "running") else "")
    return TableBlock("trials-table", headers, body, f"Every trial of {study.study_name}; the best in bold.",
                      row_classes=classes)


def bundle_facts(bundle: Bundle) -> list[tuple[str, str]]:
    test = bundle.test
    facts = []
    seeds = bundle.over_seeds
    several = bool(seeds) and seeds.get("n", 0) > 1  # then the exported weights are one of several seeds
    if several:
        ci = seeds.get("ci95") or [None, None]
        facts.append((f"test accuracy over {seeds['n']} seeds", f"{seeds['mean']:.4f} ± {seeds['std']:.4f}"
                      + (f" (95 % CI {ci[0]:.4f}–{ci[1]:.4f})" if None not in ci else "")))
    if "accuracy" in test:
        facts.append(("test accuracy" + (f" (exported weights, seed {bundle.seed})" if several else ""),
                      f"{test['accuracy']:.4f}"))
    if "macro_f1" in test:
        facts.append(("test macro F1" + (" (exported weights)" if several else ""), f"{test['macro_f1']:.4f}"))
    return facts


def bundle_sections(bundle: Bundle) -> list[Section]:
    """The exported winner on the test split: curves, confusion, per-class scores, confused pairs, explain."""
    test, classes = bundle.test, bundle.classes
    blocks: list = []
    if bundle.retrain_history:  # the exported weights' own training
        blocks.append(FigureBlock("learning-curves", "Learning curves", F.learning_curves_figure(bundle.retrain_history, "val (trained on)"),
                                  "The exported weights' training: loss and accuracy per epoch "
                                  f"({len(bundle.retrain_history)} epochs, re-trained on train + val, so its 'val' "
                                  "curve is measured on images it trains on; held-out results are the test ones below)."))
    elif bundle.history:
        blocks.append(FigureBlock("learning-curves", "Learning curves", F.learning_curves_figure(bundle.history),
                                  "The search trial's training (the exported checkpoint): loss and accuracy per epoch "
                                  f"({len(bundle.history)} epochs, train split, validated on the val split)."))
    else:
        blocks.append(NoteBlock("Learning curves: the bundle's history is empty."))
    n = test.get("n", sum(map(sum, test["confusion_matrix"])))
    blocks.append(FigureBlock("confusion-counts", "Test confusion matrix (counts)",
                              F.confusion_figure(test["confusion_matrix"], classes),
                              f"Rows: true class, columns: predicted class; {n} test images."))
    blocks.append(FigureBlock("confusion-normalised", "Test confusion matrix (row-normalised)",
                              F.confusion_figure(test["confusion_matrix"], classes, normalise=True),
                              "Each row divided by the class's test images: the diagonal is the recall."))
    blocks.append(FigureBlock("per-class", "Per-class precision, recall and F1", F.per_class_figure(test["per_class"])))
    blocks.append(confused_block(bundle))
    origin = " of ".join(x for x in (f"trial #{bundle.trial}" if bundle.trial is not None else "",
                                      f"study {bundle.study}" if bundle.study else "") if x)
    intro = (f"The exported winner{f' ({origin})' if origin else ''} on the held-out test split, "
             f"as measured by `archsearch best --export` (read from {bundle.path}; the report never reads the "
             "test split).")
    sections = [Section("test", "Test results", blocks, intro)]
    if bundle.explain:
        sections.append(Section("explain", "Explanations", [GalleryBlock(
            "explain-images", "Figures from archsearch explain",
            [(name, [(name, data_uri(png))]) for name, png in bundle.explain], large=True)]))
    return sections


def confused_block(bundle: Bundle) -> GalleryBlock | TableBlock:
    """The most confused pairs with their example images (confused.npz), else a table of them."""
    cm, classes = bundle.test["confusion_matrix"], bundle.classes
    if bundle.confused is None or not len(bundle.confused["true"]):
        pairs = most_confused(cm, CONFUSED_PAIRS)
        return TableBlock("confused-pairs", ["true", "predicted", "test images"],
                          [[classes[t], classes[p], str(c)] for t, p, c in pairs],
                          "Most confused pairs (the bundle has no example images, confused.npz).")
    z = bundle.confused
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (t, p) in enumerate(zip(z["true"].tolist(), z["pred"].tolist())):
        groups.setdefault((t, p), []).append(i)
    gallery = []
    for (t, p), idx in groups.items():
        caption = f"true {classes[t]} → predicted {classes[p]}: {cm[t][p]} test image(s), {len(idx)} shown"
        gallery.append((caption, [(f"true {classes[t]}, predicted {classes[p]}", image_uri(z["images"][i]))
                                  for i in idx]))
    return GalleryBlock("confused-pairs", "Most confused pairs", gallery,
                        "Test images of each pair as stored (before normalisation).")
