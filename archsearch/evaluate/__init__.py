"""The one door to the test split: evaluation of finished runs (and, later, re-evaluation over seeds)."""

from archsearch.evaluate.run import evaluate_run, load_run

__all__ = ["evaluate_run", "load_run"]
