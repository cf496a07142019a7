"""`best` ranks the finalists by the test value of the metric the search selected on (train.metric)."""

from __future__ import annotations

import pytest

from archsearch.errors import ArchsearchError
from archsearch.evaluate.best import Entry, SeedRun, rank_entries
from archsearch.export.card import _choice


def entry(trial: int, metric: str, per_seed: list[tuple[float, float]], val: float = 0.5) -> Entry:
    """per_seed: (accuracy, balanced_accuracy) for seeds 0, 1, ..."""
    runs = [SeedRun(seed=s, accuracy=acc, macro_f1=bal, epochs=1, seconds=1.0, weights=f"t{trial}_{s}.pt",
                    test_fingerprint="f", spec_hash="h", metrics={"accuracy": acc, "balanced_accuracy": bal})
            for s, (acc, bal) in enumerate(per_seed)]
    return Entry(trial=trial, spec={"train": {"metric": metric}}, params=1, flops=1, val_metric=val, latency_ms=1.0,
                 runs=runs, classes=["a", "b"], normalization={})


def test_ranking_follows_the_specs_metric_not_plain_accuracy():
    # trial 1 is more accurate (the majority class), trial 2 better balanced across classes
    majority = [(0.90, 0.60), (0.91, 0.62), (0.89, 0.61)]
    balanced = [(0.85, 0.80), (0.86, 0.81), (0.84, 0.79)]
    ranked, test = rank_entries([entry(1, "accuracy", majority), entry(2, "accuracy", balanced)])
    assert [e.trial for e in ranked] == [1, 2] and test.mean_diff == pytest.approx(0.05)
    ranked, test = rank_entries([entry(1, "balanced_accuracy", majority), entry(2, "balanced_accuracy", balanced)])
    assert [e.trial for e in ranked] == [2, 1]
    assert ranked[0].score.mean == pytest.approx(0.80) and test.mean_diff == pytest.approx(0.19)
    assert ranked[0].accuracy.mean == pytest.approx(0.85)  # plain accuracy still reported beside it
    card = _choice({"leaderboard": {"entries": [{"test_metric": {"name": "balanced_accuracy"}}, {}]}})
    assert "by mean test balanced_accuracy" in card


def test_paired_test_uses_shared_seeds_and_stored_results_without_the_metric_are_refused():
    a = entry(1, "balanced_accuracy", [(0.9, 0.7), (0.9, 0.8), (0.9, 0.9)])
    b = entry(2, "balanced_accuracy", [(0.9, 0.5), (0.9, 0.6)])
    ranked, test = rank_entries([b, a])
    assert [e.trial for e in ranked] == [1, 2] and test.n == 2 and test.mean_diff == pytest.approx(0.2)
    a.runs[0].metrics = {}
    with pytest.raises(ArchsearchError, match=r"trial #1: the stored test results of seed\(s\) \[0\] lack balanced"):
        rank_entries([a, b])
