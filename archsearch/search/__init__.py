"""Search: Optuna studies over spaces. resolve → budget → build → fit, per trial.

The package imports lazily: reading a study (study.py) does not load torch; running one (run.py) does."""

from __future__ import annotations

import importlib

__all__ = ["SearchResult", "open_study", "run_search", "study_summaries"]
_HOME = {"SearchResult": "run", "run_search": "run", "open_study": "study", "study_summaries": "study"}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f"archsearch.search.{_HOME[name]}"), name)
    raise AttributeError(f"module 'archsearch.search' has no attribute {name!r}")
