"""Shared fixtures: an offline 'ImageNet' torch cache written by the tests themselves, and one real
tiny digits study shared by the report, insights and ablation tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def running_trials(db: Path, trained: bool = False) -> list[int]:
    """Numbers of the RUNNING trials in an Optuna SQLite file (with `trained`: only those that
    finished an epoch), read with one short read-only query: a poll every fraction of a second
    must not build a storage (engine, schema checks) each time. [] while the file or its tables
    are not there yet or the file is busy."""
    import sqlite3

    if not db.exists():
        return []
    query = "SELECT number FROM trials WHERE state = 'RUNNING'"
    if trained:
        query += (" AND trial_id IN (SELECT trial_id FROM trial_user_attributes WHERE key = 'history'"
                  " AND value_json != '[]')")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return []
    try:
        return [n for (n,) in con.execute(query)]
    except sqlite3.Error:
        return []
    finally:
        con.close()


@pytest.fixture(scope="session")
def _weights_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TORCH_HOME whose hub cache holds (randomly initialised) resnet18/50 checkpoints under the
    file names torchvision's weights API looks for, so `pretrained: imagenet` loads offline."""
    import torch
    import torchvision

    from archsearch.build.backbones import imagenet_cache_path

    home = tmp_path_factory.mktemp("torch_home")
    import os

    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(home)
    try:
        for name in ("resnet18", "resnet50"):
            path = imagenet_cache_path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.manual_seed(0)
            torch.save(torchvision.models.get_model(name, weights=None).state_dict(), path)
    finally:
        if old is None:
            del os.environ["TORCH_HOME"]
        else:
            os.environ["TORCH_HOME"] = old
    return home


@pytest.fixture
def imagenet_cache(_weights_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(_weights_home))
    return _weights_home


@pytest.fixture
def write(tmp_path: Path):
    """write('name.yaml', text) → path of a file with that text in a temp dir."""

    def _write(name: str, text: str) -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p

    return _write


DIGITS_SPACE = ROOT / "spaces" / "digits_cnn.yaml"
# random sampler, seed 0 (offset per trial by the trials already in the study): some trials train to
# the end, one is over max_params, the others are pruned after epoch 1
OVERRIDES = ["train.epochs=3", "search.sampler.name=random", "search.budgets.max_params=5300",
             "search.pruner={name: median, startup_trials: 2, warmup_epochs: 0}"]


def search(root: Path, name: str, overrides: list[str], trials: int):
    """run_search on the digits space in `root`; the optuna.Study (trials run in this process)."""
    from archsearch.search import run_search
    from archsearch.spec.search import SearchSpec
    from archsearch.spec.space import load_space

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        space = load_space(DIGITS_SPACE, overrides)
        spec = SearchSpec.model_validate(space.section("search"))
        return run_search(space, spec, study_name=name, trials=trials, echo=lambda s: None).study


@pytest.fixture(scope="session")
def digits_study(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Study `t` in root/studies/t.db: 6 trials, some complete, one over budget, some pruned."""
    root = tmp_path_factory.mktemp("report")
    return SimpleNamespace(root=root, study=search(root, "t", OVERRIDES, trials=6))
