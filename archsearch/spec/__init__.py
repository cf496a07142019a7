"""Specs: YAML → validated, immutable pydantic objects. Imports nothing else of archsearch but errors."""

from archsearch.spec.data import DataSpec
from archsearch.spec.io import load_spec, load_yaml, parse_spec
from archsearch.spec.model import BackboneSpec, HeadSpec, ModelSpec
from archsearch.spec.root import Spec
from archsearch.spec.search import SearchSpec
from archsearch.spec.train import TrainSpec

__all__ = [
    "BackboneSpec",
    "DataSpec",
    "HeadSpec",
    "ModelSpec",
    "SearchSpec",
    "Spec",
    "TrainSpec",
    "load_spec",
    "load_yaml",
    "parse_spec",
]
