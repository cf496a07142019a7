"""The GPU-memory budget on a real device (skipped without CUDA): measured before training, and
every completed trial's real training peak stays within it."""

from __future__ import annotations

import pytest
import torch

from archsearch.search import run_search
from archsearch.spec.search import SearchSpec
from archsearch.spec.space import load_space
from tests.conftest import ROOT

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

BUDGET = 96 * 2**20


def test_gpu_memory_budget_holds_for_every_completed_trial(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = load_space(ROOT / "spaces" / "digits_cnn.yaml", [
        "model.layers.0.layers.0.out={choice: [8, 512], name: width}",
        "train.batch_size={choice: [32, 2048], name: batch_size}",
        f"search.budgets.gpu_memory={BUDGET}", "search.sampler.name=random", "train.epochs=2",
    ])
    study = run_search(space, SearchSpec.model_validate(space.section("search")), study_name="gpu", trials=10,
                       device="cuda", echo=print).study
    ok = [t for t in study.trials if t.user_attrs.get("status") == "ok"]
    over = [t for t in study.trials if t.user_attrs.get("status") == "over_budget"]
    assert ok and over
    for t in ok:
        assert t.user_attrs["memory_source"] == "measured"
        assert t.user_attrs["memory_bytes"] <= BUDGET
        assert t.user_attrs["train_peak_bytes"] <= BUDGET, (t.params, t.user_attrs["train_peak_bytes"])
    for t in over:
        assert "gpu_memory" in t.user_attrs["reason"] and t.user_attrs["memory_source"] in ("measured", "cuda_oom")
