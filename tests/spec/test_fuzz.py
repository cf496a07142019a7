"""Hypothesis throws mutated specs at the loader: every outcome is a Spec or a clean SpecError."""

from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch.errors import SpecError
from archsearch.spec import Spec, parse_spec
from archsearch.spec.io import parse_yaml
from tests.conftest import EXAMPLES

BASES = [yaml.safe_load(p.read_text()) for p in EXAMPLES]
for b in BASES:  # the loader's file checks are not under test here
    if b["model"].get("backbone"):
        b["model"]["backbone"]["pretrained"] = "none"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["conv2d", "relu", "same", "imagenet", "", "1e-3", "é∂", "linear", "repeat"]),
)
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=8)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated(draw):
    spec = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(spec) if p]
        path = draw(st.sampled_from(paths))
        parent = spec
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(values)
        else:
            parent.insert(path[-1], draw(values))
    return spec


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_load_or_fail_cleanly(data):
    try:
        assert isinstance(parse_spec(data), Spec)
    except SpecError as e:
        assert e.problems and all(p.message for p in e.problems)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_escapes_as_another_error(text):
    try:
        data, _ = parse_yaml(text)
        parse_spec(data)
    except SpecError:
        pass
