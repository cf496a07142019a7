"""The JSON Schema that `archsearch schema` prints agrees with the loader on the shipped files and
refuses what the loader refuses in the cases an editor should flag."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from archsearch.spec.io import load_yaml
from archsearch.spec.schema import spec_schema
from tests.conftest import EXAMPLES, ROOT

SPACES = sorted((ROOT / "spaces").glob("*.yaml"))
SPEC = jsonschema.Draft202012Validator(spec_schema())
SPACE = jsonschema.Draft202012Validator(spec_schema(space=True))


def _errors(validator, data):
    return [e.message for e in validator.iter_errors(data)]


def test_both_schemas_are_valid_draft_2020_12():
    for schema in (spec_schema(), spec_schema(space=True)):
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", EXAMPLES + SPACES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_file_passes_its_schema(path):
    """Shorthands (`optimizer: adam`, `augment: [hflip]`) included; spaces under the space schema."""
    data, _ = load_yaml(path)
    assert _errors(SPACE, data) == []
    if path in EXAMPLES:
        assert _errors(SPEC, data) == []


def test_spaces_need_the_space_schema():
    data, _ = load_yaml(ROOT / "spaces" / "digits_cnn.yaml")
    assert _errors(SPEC, data), "a {choice: ...} in place of a value is not a spec"


def _digits_space():
    data, _ = load_yaml(ROOT / "spaces" / "digits_cnn.yaml")
    return data


def _set(data, path, value):
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize("path, value", [
    (("train", "lrr"), 0.1),                                  # unknown field
    (("train", "optimizer"), "adamm"),                        # unknown shorthand name
    (("data", "augment"), ["hflipp"]),                        # unknown augmentation shorthand
    (("search", "trials"), {"int": [1, 5]}),                  # the search section is not searched
    (("train", "lr"), {"choice": []}),                        # a choice needs options
    (("train", "epochs"), {"int": [1]}),                      # a range needs [low, high]
    (("train", "epochs"), {"float": [1, 3]}),                 # an int field takes no float range
    (("data", "dataset"), {"float": [0, 1]}),                 # nor does a name
    (("train", "lr"), {"choice": [0.1, 0.2], "log": True}),   # a choice takes no log
    (("train", "optimizer"), {"choice": ["adam", "nope"]}),   # each option is a value of the field
    (("search", "budgets"), {"gpu_memory": "lots"}),          # a size needs a number
])
def test_space_schema_refuses(path, value):
    assert _errors(SPACE, _set(_digits_space(), path, value))


def test_space_schema_takes_dimensions_where_the_loader_does():
    data = _digits_space()
    data["model"]["layers"].insert(0, {"choice": [[{"type": "conv2d", "out": 8}, {"type": "batchnorm"}],
                                                   {"type": "dropout", "p": {"float": [0.0, 0.5]}}]})
    data["train"]["epochs"] = {"int": [2, 8], "step": 2, "name": "epochs"}
    data["search"]["budgets"] = {"gpu_memory": "4GiB", "max_params": 100000}
    assert _errors(SPACE, data) == []
    bad = copy.deepcopy(data)
    bad["model"]["layers"][0]["choice"][0][0]["outt"] = 8  # a misspelt field inside an option
    assert _errors(SPACE, bad)
