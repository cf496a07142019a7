"""Records → plotly figures: Optuna's own plots for the study, ours for the exported winner."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import optuna
import plotly.graph_objects as go
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from archsearch.report.records import is_ok

Target = Callable[[FrozenTrial], float]
TEMPLATE = "plotly_white"
PRUNED_COLOR, TRAIN_COLOR, VAL_COLOR = "#cf222e", "#0969da", "#bc4c00"


def tidy(fig: go.Figure, height: int = 420) -> go.Figure:
    """One look for every figure: white template, no inner title (the page has headings), a height."""
    fig.update_layout(template=TEMPLATE, title=None, height=height, margin={"l": 60, "r": 20, "t": 30, "b": 50})
    return fig


def _optuna_plot(plot: Callable[..., go.Figure], *args, **kwargs) -> go.Figure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return plot(*args, **kwargs)


def epoch_axis(fig: go.Figure, max_epoch: int, **where) -> None:
    """Whole epochs on the x axis: one tick each for short runs, plotly's choice for long ones."""
    fig.update_xaxes(title_text="epoch", dtick=1 if max_epoch <= 12 else None, **where)


def value_target(study: optuna.Study, index: int) -> Target | None:
    """None for a single-objective study (Optuna's own value, with its best-value line), else
    the index-th value."""
    if len(study.directions) == 1:
        return None
    return lambda t: t.values[index]


# -- the study -------------------------------------------------------------------------------------
def history_figure(study: optuna.Study, target: Target | None, target_name: str) -> go.Figure:
    """Objective value per trial (infeasible trials grey) and, single-objective, the best so far."""
    return tidy(_optuna_plot(optuna.visualization.plot_optimization_history, study, target=target,
                             target_name=target_name))


def intermediate_figure(study: optuna.Study, pruned: dict[int, int],
                        curves: dict[int, list[tuple[int, float]]] | None = None,
                        value_name: str = "val metric") -> go.Figure:
    """The value each trial reported per epoch; pruned trials dashed red with an × where they stopped.

    Optuna draws the reported intermediate values; multi-objective studies report none, so
    `curves` (trial → (epoch, val metric)) from the recorded histories are drawn instead."""
    if curves is None:
        fig = _optuna_plot(optuna.visualization.plot_intermediate_values, study)
    else:
        fig = go.Figure([go.Scatter(x=[e for e, _ in c], y=[v for _, v in c], mode="lines+markers",
                                    name=f"Trial{n}") for n, c in sorted(curves.items())])
    for trace in fig.data:
        number = int(trace.name.removeprefix("Trial")) if trace.name and trace.name.startswith("Trial") else None
        if number in pruned:
            trace.update(name=f"trial {number} (pruned at epoch {pruned[number]})",
                         line={"dash": "dash", "color": PRUNED_COLOR, "width": 1},
                         marker={"symbol": ["circle"] * (len(trace.x) - 1) + ["x"], "size": 7,
                                 "color": PRUNED_COLOR, "maxdisplayed": 0})
        elif number is not None:
            trace.update(name=f"trial {number}")
    fig.update_layout(showlegend=True, yaxis_title=value_name)
    epoch_axis(fig, max((max(tr.x) for tr in fig.data if tr.x), default=1))
    return tidy(fig)


def importance_figure(study: optuna.Study, target_name: str, index: int = 0, n_params: int = 4) -> go.Figure:
    """Parameter importances (Optuna's default evaluator) for the index-th objective, over the trials
    that trained to the end (over-budget ones carry placeholder values). Needs >= 2 such trials
    and a parameter that varies; check with records.varying_params first."""
    sign = -1.0 if study.directions[index] == StudyDirection.MAXIMIZE else 1.0

    def target(t: FrozenTrial) -> float:  # PED-ANOVA with a target ranks low values as good
        return sign * t.values[index] if is_ok(t) else math.nan

    return tidy(_optuna_plot(optuna.visualization.plot_param_importances, study, target=target,
                             target_name=target_name), height=max(240, 90 + 45 * n_params))


def parallel_figure(study: optuna.Study, target: Target | None, target_name: str) -> go.Figure:
    fig = tidy(_optuna_plot(optuna.visualization.plot_parallel_coordinate, study, target=target,
                            target_name=target_name))
    fig.update_layout(margin_t=80)  # room for the feasible/infeasible legend above the axes
    return fig


def slice_figure(study: optuna.Study, target: Target | None, target_name: str) -> go.Figure:
    fig = _optuna_plot(optuna.visualization.plot_slice, study, target=target, target_name=target_name)
    fig.update_layout(width=None)  # Optuna fixes 300 px a parameter; fill the page instead
    return tidy(fig, height=380)


def pareto_figure(study: optuna.Study, names: Sequence[str]) -> go.Figure:
    """The Pareto front of the first (up to 3) objectives; dominated trials lighter."""
    names = list(names)[:3]
    targets = None if len(study.directions) <= 3 else (lambda t: t.values[:3])
    return tidy(_optuna_plot(optuna.visualization.plot_pareto_front, study, target_names=names,
                             targets=targets), height=480)


# -- the exported winner ---------------------------------------------------------------------------
def learning_curves_figure(history: list[dict], val_label: str = "val") -> go.Figure:
    """Train and val loss (left) and accuracy (right) per epoch (`val_label` names the val curves)."""
    from plotly.subplots import make_subplots

    epochs = [int(r["epoch"]) for r in history]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.08)
    for col, key in ((1, "loss"), (2, "acc")):
        for split, color in (("train", TRAIN_COLOR), ("val", VAL_COLOR)):
            fig.add_trace(go.Scatter(x=epochs, y=[float(r[f"{split}_{key}"]) for r in history], mode="lines+markers",
                                     name=f"{val_label if split == 'val' else split} {'loss' if key == 'loss' else 'accuracy'}",
                                     line={"color": color, "dash": "solid" if key == "loss" else "dot"}),
                          row=1, col=col)
        epoch_axis(fig, max(epochs, default=1), row=1, col=col)
    return tidy(fig, height=380)


def confusion_figure(confusion: Sequence[Sequence[int]], classes: list[str], normalise: bool = False) -> go.Figure:
    """The confusion matrix as a heatmap (rows = true class); counts, or each row divided by its total."""
    counts = np.asarray(confusion, dtype=np.int64)
    if normalise:
        totals = counts.sum(axis=1, keepdims=True)
        z = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0).round(4)
        hover = "true %{y}<br>predicted %{x}<br>%{z:.1%} of the class<extra></extra>"
    else:
        z, hover = counts, "true %{y}<br>predicted %{x}<br>%{z} images<extra></extra>"
    # empty cells stay blank, so the eye goes to the diagonal and the mistakes
    text = [[("" if c == 0 else f"{v:.2f}" if normalise else str(v)) for c, v in zip(crow, zrow)]
            for crow, zrow in zip(counts.tolist(), z.tolist())]
    side = max(360, min(900, 120 + 38 * len(classes)))
    fig = go.Figure(go.Heatmap(z=z.tolist(), x=list(classes), y=list(classes), colorscale="Blues", text=text,
                               texttemplate="%{text}", hovertemplate=hover, zmin=0, zmax=1 if normalise else None))
    fig.update_xaxes(title_text="predicted", type="category", side="bottom")
    fig.update_yaxes(title_text="true", type="category", autorange="reversed")
    return tidy(fig, height=side)


def per_class_figure(per_class: dict[str, dict]) -> go.Figure:
    """Precision, recall and F1 of every class, grouped bars."""
    names = list(per_class)
    fig = go.Figure([go.Bar(x=names, y=[float(per_class[c][k]) for c in names], name=k,
                            customdata=[per_class[c].get("support", 0) for c in names],
                            hovertemplate="%{x}: " + k + " %{y:.3f}<br>support %{customdata}<extra></extra>")
                     for k in ("precision", "recall", "f1")])
    fig.update_layout(barmode="group", yaxis={"range": [0, 1.05], "title": "score"},
                      xaxis={"type": "category", "title": "class"})
    return tidy(fig, height=380)
