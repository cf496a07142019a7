"""One-at-a-time ablation around a study's best trial: what the seed reports did by hand.

For each named discrete parameter, every option is trained with all the other parameters held at
the best trial's values, over several seeds, and compared on the validation split (the test split
stays closed: this is still model selection). A search concentrates its trials where it found good
results, so its per-choice numbers compare unequal neighbourhoods; the ablation compares the
options on equal terms, with the seed-to-seed spread beside each difference.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from archsearch.data.testsplit import test_split_forbidden
from archsearch.errors import ArchsearchError
from archsearch.report.insights import option_label, short
from archsearch.search.resolve import trial_suggest
from archsearch.search.study import best_ok_trials, space_from_study
from archsearch.spec.space import Dimension


@dataclass
class Variant:
    param: str
    option: str  # label
    is_best: bool  # the best trial's own option
    params: int = 0  # model parameters
    values: list[float] = field(default_factory=list)  # val metric per seed

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


@dataclass
class Ablation:
    best_trial: int  # the trial whose values hold the other parameters
    variants: list[Variant]


def _options(dim: Dimension) -> list[tuple[object, str]]:
    """(the value Optuna stores, label) per option of a discrete dimension."""
    if dim.kind == "choice":
        if dim.structured:
            return [(i, short(option_label(c))) for i, c in enumerate(dim.choices)]
        return [(c, str(c)) for c in dim.choices]
    if dim.kind == "int" and (dim.high - dim.low) / (dim.step or 1) <= 8:
        step = int(dim.step or 1)
        return [(v, str(v)) for v in range(int(dim.low), int(dim.high) + 1, step)]
    raise ArchsearchError(f"--params {dim.name}: ablation takes choices and small int ranges; "
                          f"{dim.name} is a {dim.kind} range")


def ablate(study: optuna.Study, params: list[str], seeds: int = 3, *, device: str | None = None,
           data_dir: str | None = None, echo: Callable[[str], None] = print) -> Ablation:
    """Train every option of each of `params` around the best trial, `seeds` times each."""
    from archsearch.train.run import train_run

    best = best_ok_trials(study, 1)
    if not best:
        raise ArchsearchError(f"study {study.study_name} has no trial that trained to the end: nothing to ablate around")
    best = best[0]
    space = space_from_study(study)
    dims = {d.name: d for d in space.dims}
    unknown = [p for p in params if p not in dims]
    if unknown:
        raise ArchsearchError(f"--params: {', '.join(unknown)} not in the study's space (it has: {', '.join(dims)})")
    plan = [(p, value, label) for p in params for value, label in _options(dims[p])]
    variants: list[Variant] = []
    done: dict[str, tuple[int, float]] = {}  # the same resolved spec and seed train once (the best's own options)
    with test_split_forbidden(f"archsearch ablate (study {study.study_name})"), tempfile.TemporaryDirectory() as tmp:
        for k, (p, value, label) in enumerate(plan, 1):
            fixed = {**best.params, p: value}
            spec = space.resolve(trial_suggest(optuna.trial.FixedTrial(fixed)))
            v = Variant(p, label, best.params.get(p) == value)
            for seed in range(seeds):
                seeded = spec.model_copy(update={"train": spec.train.model_copy(update={"seed": seed})})
                key = seeded.model_dump_json()
                if key not in done:
                    run = train_run(seeded, Path(tmp) / f"{k}_{seed}", device=device, data_dir=data_dir, progress=False)
                    done[key] = (int(run.metrics.get("params", 0)), float(run.fit.best_metric))
                    how = ""
                else:
                    how = " (trained before)"
                v.params, value_ = done[key]
                v.values.append(value_)
                echo(f"[{k}/{len(plan)}] {p} = {label}{' (best trial)' if v.is_best else ''}, seed {seed}: "
                     f"val {value_:.4f}{how}")
            variants.append(v)
    return Ablation(best.number, variants)
