"""The only caller of trial.suggest_*: a space + an Optuna trial → a concrete Spec."""

from __future__ import annotations

import random
from typing import Any

import optuna

from archsearch.spec.space import Dimension, Space, Suggest


def trial_suggest(trial: optuna.Trial) -> Suggest:
    """Map each dimension to Optuna's suggest API (structured choices are suggested by index)."""

    def suggest(dim: Dimension) -> Any:
        if dim.kind == "choice":
            if dim.structured:
                return dim.choices[trial.suggest_categorical(dim.name, list(range(len(dim.choices))))]
            return trial.suggest_categorical(dim.name, list(dim.choices))
        if dim.kind == "int":
            return trial.suggest_int(dim.name, int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log)
        return trial.suggest_float(dim.name, float(dim.low), float(dim.high), step=dim.step, log=dim.log)

    return suggest


def random_suggest(rng: random.Random) -> Suggest:
    """Uniform draws (log-uniform for log ranges), for `archsearch sample`."""
    import math

    def suggest(dim: Dimension) -> Any:
        if dim.kind == "choice":
            return rng.choice(dim.choices)
        lo, hi = float(dim.low), float(dim.high)
        if dim.log:
            value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        else:
            value = rng.uniform(lo, hi)
        if dim.step:
            value = lo + round((value - lo) / dim.step) * dim.step
        if dim.kind == "int":
            return max(int(lo), min(int(hi), int(round(value))))
        return min(hi, max(lo, value))

    return suggest


def resolve_trial(space: Space, trial: optuna.Trial):
    return space.resolve(trial_suggest(trial))


def sample_specs(space: Space, n: int, seed: int = 0, max_tries: int = 50) -> list:
    """n valid concrete specs drawn at random (invalid draws are skipped, up to max_tries each)."""
    from archsearch.errors import SpecError

    rng = random.Random(seed)
    out, last_error = [], None
    for _ in range(n):
        for _ in range(max_tries):
            try:
                out.append(space.resolve(random_suggest(rng)))
                break
            except SpecError as e:
                last_error = e
        else:
            raise SpecError(
                f"no valid spec in {max_tries} random draws; the last one failed with:\n{last_error}", space.source
            )
    return out
