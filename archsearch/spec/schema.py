"""JSON Schema of spec files and of spaces, for editors (yaml-language-server) and other tools.

pydantic's schema describes the validated form of a spec. A YAML file may say more, and the schema
here says it too: the shorthands the models accept before validation (`optimizer: adam`,
`augment: [hflip]`, `gpu_memory: 4GiB`) and, for a space, a search dimension (`{choice: [...]}`,
`{int: [lo, hi]}`, `{float: [lo, hi]}`) in place of any value outside `search:` — a whole layer or
sub-stack included, as `archsearch.spec.space` resolves them.
"""

from __future__ import annotations

import copy
from typing import Any

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_HOISTED = ("title", "description", "default")
_DIMENSION_DOC = "a search dimension: one of `choice`, `int`, `float` (see archsearch.spec.space)"


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def _names(prop: dict[str, Any]) -> list[str]:
    """The literal values a `name:` / `type:` property allows."""
    if "const" in prop:
        return [prop["const"]]
    return list(prop.get("enum", []))


def _shorthand(defs: dict[str, Any]) -> None:
    """A model that accepts a bare string for its name/type field accepts it in the schema too."""
    from archsearch.spec.base import NamedOption
    from archsearch.spec.data import _Aug

    for base, key in ((NamedOption, "name"), (_Aug, "type")):
        for cls in _subclasses(base):
            obj = defs.get(cls.__name__)
            if obj is None or key not in obj.get("properties", {}):
                continue
            outer = {k: obj.pop(k) for k in _HOISTED if k in obj}
            defs[cls.__name__] = {**outer, "anyOf": [{"type": "string", "enum": _names(obj["properties"][key])}, obj]}


def _size_strings(defs: dict[str, Any]) -> None:
    """`budgets.gpu_memory` takes a size such as '4GiB' (archsearch.spec.search.parse_bytes)."""
    from archsearch.spec.search import SIZE_PATTERN

    prop = defs.get("Budgets", {}).get("properties", {}).get("gpu_memory")
    if prop is not None:
        prop["anyOf"] = [{"type": "integer", "exclusiveMinimum": 0},
                         {"type": "string", "pattern": f"^{SIZE_PATTERN}$"}, {"type": "null"}]


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        out = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        for v in node.values():
            out |= _refs(v)
        return out
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _reachable(roots: list[Any], defs: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    todo = set().union(*(_refs(r) for r in roots))
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        todo |= _refs(defs[name])
    return seen


def _admits(node: Any, kind: str, defs: dict[str, Any]) -> bool:
    """Whether a schema names the JSON type `kind` (integer | number) for some of its values."""
    if not isinstance(node, dict):
        return False
    types = node.get("type")
    types = [types] if isinstance(types, str) else (types or [])
    if kind in types:
        return True
    members = node.get("anyOf", []) + node.get("oneOf", [])
    if isinstance(node.get("$ref"), str):
        members = [*members, defs.get(node["$ref"].rsplit("/", 1)[-1])]
    return any(_admits(m, kind, defs) for m in members)


def _dimensions(value: dict[str, Any], in_list: bool, defs: dict[str, Any]) -> list[dict[str, Any]]:
    """The dimension forms that may stand where `value` stands (options of a choice are values)."""
    option: dict[str, Any] = value
    if in_list:  # a list-valued option of an element is spliced into the list (a sub-stack)
        option = {"anyOf": [value, {"type": "array", "items": value}]}
    forms: list[dict[str, Any]] = [{
        "type": "object",
        "description": "search dimension: one of the options (each may hold dimensions of its own)",
        "properties": {"choice": {"type": "array", "minItems": 1, "items": option},
                       "name": {"$ref": "#/$defs/DimensionName"}},
        "required": ["choice"],
        "additionalProperties": False,
    }]
    real = _admits(value, "number", defs)
    if real or _admits(value, "integer", defs):
        forms.append({"$ref": "#/$defs/IntDimension"})
    if real:
        forms.append({"$ref": "#/$defs/FloatDimension"})
    return forms


def _searchable(node: dict[str, Any], defs: dict[str, Any], in_list: bool = False) -> dict[str, Any]:
    """`node`, or a dimension in its place; arrays inside it take dimensions per element too."""
    inner = {k: v for k, v in node.items() if k not in _HOISTED}
    inner = _elements(inner, defs)
    outer = {k: node[k] for k in _HOISTED if k in node}
    return {**outer, "anyOf": [inner, *_dimensions(inner, in_list, defs)]}


def _elements(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if isinstance(node.get("items"), dict):
        node["items"] = _searchable(node["items"], defs, in_list=True)
    if isinstance(node.get("prefixItems"), list):
        node["prefixItems"] = [_searchable(p, defs) for p in node["prefixItems"]]
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            node[key] = [_elements(m, defs) if isinstance(m, dict) else m for m in node[key]]
    return node


def _searchable_object(obj: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in obj and "properties" not in obj:  # a shorthand wrapper: the object is one member
        return {**obj, "anyOf": [_searchable_object(m, defs) for m in obj["anyOf"]]}
    props = obj.get("properties")
    if not isinstance(props, dict):
        return obj
    # `type` picks the layer/augmentation class: a different one is a choice of whole elements
    return {**obj, "properties": {k: v if k == "type" else _searchable(v, defs) for k, v in props.items()}}


def _space(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema["$defs"]
    props = schema["properties"]
    searchable = ("model", "data", "train")
    search_only = _reachable([props.get("search")], defs) - _reachable([props[k] for k in searchable], defs)
    for name in list(defs):
        if name not in search_only:
            defs[name] = _searchable_object(defs[name], defs)
    for key in searchable:
        props[key] = _searchable(props[key], defs)
    bound = {"type": "array", "minItems": 2, "maxItems": 2}
    named = {"name": {"$ref": "#/$defs/DimensionName"}, "log": {"type": "boolean"}}
    defs["DimensionName"] = {"type": "string", "minLength": 1,
                             "description": "the Optuna parameter name (default: the field path)"}
    defs["IntDimension"] = {
        "type": "object", "description": "search dimension: a whole number in [low, high]",
        "properties": {"int": {**bound, "items": {"type": "integer"}},
                       "step": {"type": "integer", "exclusiveMinimum": 0}, **named},
        "required": ["int"], "additionalProperties": False,
    }
    defs["FloatDimension"] = {
        "type": "object", "description": "search dimension: a number in [low, high]",
        "properties": {"float": {**bound, "items": {"type": "number"}},
                       "step": {"type": "number", "exclusiveMinimum": 0}, **named},
        "required": ["float"], "additionalProperties": False,
    }
    schema["description"] = (schema.get("description") or "") + (
        "\n\nA space: any value outside `search:` may be " + _DIMENSION_DOC + ".")
    return schema


def spec_schema(space: bool = False) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a spec file, or with `space` of a space file."""
    from archsearch.spec.root import Spec

    schema = copy.deepcopy(Spec.model_json_schema())
    defs = schema.setdefault("$defs", {})
    _shorthand(defs)
    _size_strings(defs)
    if space:
        schema = _space(schema)
    schema["title"] = "archsearch space" if space else "archsearch spec"
    return {"$schema": DRAFT, **schema}
