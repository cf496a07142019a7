"""One real tiny digits study shared by the report and insights tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from archsearch.search import run_search
from archsearch.spec.search import SearchSpec
from archsearch.spec.space import load_space
from tests.conftest import ROOT

SPACE = ROOT / "spaces" / "digits_cnn.yaml"
# random sampler, seed 0 (offset per trial by the trials already in the study): some trials train to
# the end, one is over max_params, the others are pruned after epoch 1
OVERRIDES = ["train.epochs=3", "search.sampler.name=random", "search.budgets.max_params=5300",
             "search.pruner={name: median, startup_trials: 2, warmup_epochs: 0}"]


def search(root: Path, name: str, overrides: list[str], trials: int) -> optuna.Study:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        space = load_space(SPACE, overrides)
        spec = SearchSpec.model_validate(space.section("search"))
        return run_search(space, spec, study_name=name, trials=trials, echo=lambda s: None).study


@pytest.fixture(scope="session")
def digits_study(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Study `t` in root/studies/t.db: 6 trials, some complete, one over budget, some pruned."""
    root = tmp_path_factory.mktemp("report")
    return SimpleNamespace(root=root, study=search(root, "t", OVERRIDES, trials=6))
