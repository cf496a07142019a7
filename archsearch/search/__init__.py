"""Search: Optuna studies over spaces. resolve → budget → build → fit, per trial."""

from archsearch.search.study import SearchResult, open_study, run_search, study_summaries

__all__ = ["SearchResult", "open_study", "run_search", "study_summaries"]
