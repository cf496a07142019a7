"""The whole spec: model + data + train + search."""

from __future__ import annotations

from pydantic import Field

from archsearch.spec.base import StrictModel
from archsearch.spec.data import DataSpec
from archsearch.spec.model import ModelSpec
from archsearch.spec.search import SearchSpec
from archsearch.spec.train import TrainSpec


class Spec(StrictModel):
    """A complete experiment. Only `model` is required; the other sections have defaults."""

    name: str | None = None
    description: str | None = None
    model: ModelSpec
    data: DataSpec = DataSpec()
    train: TrainSpec = TrainSpec()
    search: SearchSpec = Field(SearchSpec(), description="used by `archsearch run`")
