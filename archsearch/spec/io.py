"""load(path): safe YAML → plain data with a line map → validated Spec; errors → SpecError with lines.

YAML is read with PyYAML's safe composer, then walked node by node so that every value keeps its
line. Three YAML pitfalls are closed here: duplicate keys are errors (PyYAML keeps the last one
silently), `!!python/...` and other non-standard tags are refused, and `1e-3` is a float (YAML 1.1
reads it as a string). Hostile input ends as a SpecError too: scalars PyYAML cannot construct
(`!!int abc`, `0x_`, 5,000-digit ints), nesting beyond 64 levels, and alias bombs (a document that
expands to more than `MAX_VALUES` values).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from archsearch.errors import Problem, SpecError

Loc = tuple[str | int, ...]
LineMap = dict[Loc, tuple[int | str | None, int | None]]  # a str: where a --set put the value

_STANDARD_TAGS = {
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
MAX_VALUES = 10_000  # values in a document once aliases are expanded; real specs hold a few hundred
_FLOAT_RE = re.compile(
    r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"
)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-3 / 5E+2 as floats."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _TooLarge(Exception):
    """The document expands (through aliases) beyond MAX_VALUES; the problem is already recorded."""


def _construct(node: yaml.Node, loader: _Loader, loc: Loc, problems: list[Problem]) -> Any:
    """A scalar's value, or None and a problem where PyYAML's constructor fails with a plain
    Python error (`!!int abc`, `!!bool maybe`, `0x_`, an int beyond Python's 4300-digit limit)."""
    try:
        return loader.construct_object(node)
    except (ValueError, KeyError, OverflowError):
        loader.recursive_objects.pop(node, None)  # so an alias of it fails the same way
        text = str(node.value)
        text = text if len(text) <= 40 else text[:40] + "..."
        kind = str(node.tag).rsplit(":", 1)[-1]
        problems.append(Problem(format_loc(loc), f"cannot read {text!r} as {kind}", *_mark(node)))
        return None


def _walk(node: yaml.Node, loader: _Loader, loc: Loc, lines: LineMap, problems: list[Problem], depth: int = 0) -> Any:
    lines[loc] = _mark(node)
    if len(lines) > MAX_VALUES:  # every visit adds a location: aliases cannot expand without bound
        problems.append(Problem(format_loc(loc), f"the document expands to more than {MAX_VALUES:,} values "
                                "(aliases of aliases?)", *_mark(node)))
        raise _TooLarge
    if depth > 64:
        problems.append(Problem(format_loc(loc), "nested too deeply (more than 64 levels)", *_mark(node)))
        return None
    if node.tag not in _STANDARD_TAGS:
        problems.append(
            Problem(format_loc(loc), f"the tag {node.tag!r} is not allowed in a spec", *_mark(node))
        )
        return None
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _STANDARD_TAGS:
                problems.append(Problem(format_loc(loc), "keys must be plain scalars", *_mark(key_node)))
                continue
            n_problems = len(problems)
            key = _construct(key_node, loader, (*loc, str(key_node.value)), problems)
            if len(problems) > n_problems:
                continue
            if key == "<<":
                problems.append(Problem(format_loc(loc), "YAML merge keys (<<) are not supported", *_mark(key_node)))
                continue
            if not isinstance(key, (str, int)):
                key = str(key)
            if key in out:
                first = lines.get((*loc, key), (None, None))[0]
                problems.append(
                    Problem(
                        format_loc((*loc, key)),
                        f"duplicate key {key!r} (first given on line {first})",
                        *_mark(key_node),
                    )
                )
                continue
            out[key] = _walk(value_node, loader, (*loc, key), lines, problems, depth + 1)
            lines[(*loc, key)] = _mark(key_node)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, loader, (*loc, i), lines, problems, depth + 1) for i, v in enumerate(node.value)]
    return _construct(node, loader, loc, problems)


def parse_yaml(text: str, source: str = "<string>") -> tuple[Any, LineMap]:
    """YAML text → (plain data, {location: (line, column)}). Raises SpecError."""
    problems: list[Problem] = []
    lines: LineMap = {}
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        data = None if node is None else _walk(node, loader, (), lines, problems)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise SpecError([Problem("", f"invalid YAML: {e.problem or e.context}", line, col)], source) from None
    except yaml.YAMLError as e:
        raise SpecError([Problem("", f"invalid YAML: {e}")], source) from None
    except RecursionError:
        raise SpecError([Problem("", "invalid YAML: nested too deeply")], source) from None
    except _TooLarge:
        raise SpecError(problems[-1:], source) from None
    finally:
        if loader is not None:
            loader.dispose()
    if problems:
        raise SpecError(problems, source)
    return data, lines


def load_yaml(path: str | Path) -> tuple[Any, LineMap]:
    """Read a YAML file safely. Raises SpecError naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("file not found", str(p)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read the file: {e}", str(p)) from None
    return parse_yaml(text, str(p))


def format_loc(loc: Iterable[str | int]) -> str:
    """('model', 'layers', 3, 'kernel') → 'model.layers[3].kernel'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean_loc(data: Any, loc: Iterable[str | int]) -> tuple[Loc, Any]:
    """Drop the discriminator tags / union branch names pydantic puts into error locations."""
    clean: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, Mapping) and part in node:
            clean.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            clean.append(part)
            node = node[part]
        elif isinstance(node, Mapping) and isinstance(part, str) and node.get("type") == part:
            continue  # discriminated-union tag
        elif isinstance(part, str) and ("[" in part or part in _UNION_BRANCHES
                                        or part.startswith(("function-", "constrained-"))):
            continue  # e.g. 'list[...]', 'literal[...]', 'function-after[...]'
        else:
            clean.append(part)
            node = None
    return tuple(clean), node


_UNION_BRANCHES = {"str", "int", "float", "bool", "MeanStd", "tuple", "list", "dict", "none"}


def _line_of(lines: LineMap, loc: Loc) -> tuple[int | None, int | None]:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return (None, None)


def _message(err: Mapping[str, Any]) -> str:
    kind, msg = err.get("type", ""), str(err.get("msg", ""))
    ctx = err.get("ctx") or {}
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag", ""))
        valid = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        close = difflib.get_close_matches(tag, valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown type {tag!r}" + (f"{hint} Valid" if hint else "; valid") + f" types: {', '.join(valid)}"
    if kind == "union_tag_not_found":
        tags = ctx.get("expected_tags")  # pydantic gives only the discriminator's name here
        return f"missing `type` (one of the valid types: {tags})" if tags else "missing `type`"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "literal_error":
        inp = err.get("input")
        expected = str(ctx.get("expected", ""))
        names = re.findall(r"'([^']*)'", expected)
        close = difflib.get_close_matches(str(inp), names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"got {inp!r}, expected one of: {', '.join(names) or expected}{hint}"
    if kind == "missing":
        return "required field is missing"
    return msg.removeprefix("Value error, ")


# what a value of a union's branch is, for one message where each branch refused the value
_KINDS = {"int_parsing": "a whole number", "int_type": "a whole number", "int_from_float": "a whole number",
          "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
          "bool_type": "true or false", "string_type": "a string", "list_type": "a list", "tuple_type": "a list",
          "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
          "none_required": "null"}


def _alternative(err: Mapping[str, Any]) -> str | None:
    if err.get("type") == "literal_error":
        names = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
        return f"one of: {', '.join(names)}" if names else None
    return _KINDS.get(str(err.get("type")))


def _union_message(errs: list[Mapping[str, Any]]) -> str:
    """One message for a value every branch of a union refused (pydantic gives one error a branch)."""
    alts = [_alternative(e) for e in errs]
    if all(alts):
        inp = errs[0].get("input")
        literal = next((e for e in errs if e.get("type") == "literal_error"), None)
        hint = _message(literal).partition("; did you mean")[2] if literal else ""
        return (f"got {inp!r}, expected " + ", or ".join(dict.fromkeys(alts))
                + (f"; did you mean{hint}" if hint else ""))
    return "; or ".join(dict.fromkeys(_message(e) for e in errs))


def validation_problems(exc: ValidationError, data: Any, lines: LineMap, prefix: Loc = ()) -> list[Problem]:
    """pydantic errors → Problems with clean field paths and YAML lines (one per location; the
    errors of a union's branches at one location become one message)."""
    groups: dict[Loc, list[tuple[tuple, Mapping[str, Any]]]] = {}
    for err in exc.errors():
        raw = (*prefix, *err["loc"])
        loc, _ = _clean_loc(data, raw)
        groups.setdefault(loc, []).append((raw, err))
    problems: list[Problem] = []
    for loc, errs in groups.items():
        messages: list[str] = []
        union = [e for raw, e in errs if raw != loc]  # branch names in the raw location: a union's errors
        if len(union) > 1:
            messages.append(_union_message(union))
        for raw, err in errs:
            if len(union) > 1 and raw != loc:
                continue
            messages.append(f"unknown field {loc[-1]!r}" if err.get("type") == "extra_forbidden" else _message(err))
        for msg in dict.fromkeys(messages):
            problems.append(Problem(format_loc(loc), msg, *_line_of(lines, loc)))
    return problems


def parse_spec(
    data: Any, lines: LineMap | None = None, source: str | None = None, base_dir: str | Path | None = None,
    check_files: bool = True,
):
    """Plain data (from YAML or Python) → validated Spec; every problem in one SpecError.
    check_files=False: a pretrained weights file need not exist (the spec of a trained model)."""
    from archsearch.spec.model import check_shapes
    from archsearch.spec.root import Spec

    lines = lines or {}
    if not isinstance(data, Mapping):
        raise not_a_spec(data, source)
    data = _resolve_paths(dict(data), Path(base_dir) if base_dir else None)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as e:
        problems = validation_problems(e, data, lines)
        _suggest_fields(problems, data)
        raise SpecError(problems, source) from None
    problems = [
        Problem(format_loc(("model", *loc)), msg, *_line_of(lines, ("model", *loc)))
        for loc, msg in check_shapes(spec.model)
    ]
    if check_files:
        problems += _check_files(spec, lines)
    if problems:
        raise SpecError(problems, source)
    return spec


def _suggest_fields(problems: list[Problem], data: Mapping[str, Any]) -> None:
    """Add 'did you mean' to unknown-field problems, from the keys the model accepts there."""
    from archsearch.spec.root import Spec

    schema_fields = _field_names(Spec)
    for i, p in enumerate(problems):
        m = re.fullmatch(r"unknown field '(.*)'", p.message)
        if not m:
            continue
        close = [c for c in difflib.get_close_matches(m.group(1), schema_fields, n=2, cutoff=0.75) if c != m.group(1)]
        if close:  # a field of another section (e.g. `stride` on a flatten) is not a typo
            problems[i] = Problem(p.path, f"{p.message}; did you mean {close[0]!r}?", p.line, p.column)


def _field_names(model: Any) -> list[str]:
    """Every field name of a pydantic model and the models nested in it."""
    from pydantic import BaseModel

    seen = {model}
    names: list[str] = []
    stack = [model]
    while stack:
        m = stack.pop()
        for name, field in m.model_fields.items():
            names.append(name)
            for t in _types_in(field.annotation):
                if isinstance(t, type) and issubclass(t, BaseModel) and t not in seen:
                    seen.add(t)
                    stack.append(t)
    return sorted(set(names))


def _types_in(tp: Any) -> list[Any]:
    import typing

    out = [tp]
    for arg in typing.get_args(tp):
        out += _types_in(arg)
    return out


def _resolve_paths(data: dict[str, Any], base: Path | None) -> dict[str, Any]:
    """Make relative file paths (pretrained weights, image folders) relative to the spec's folder."""
    if base is None:
        return data

    def fix(section: Any, key: str, keep: tuple[str, ...] = ()) -> Any:
        if isinstance(section, Mapping) and isinstance(section.get(key), str) and section[key] not in keep:
            try:
                p = Path(section[key]).expanduser()
                if not p.is_absolute():
                    p = (base / p).resolve()
            except (RuntimeError, ValueError, OSError):  # `~nosuchuser/...`, an embedded NUL byte
                return section  # left as written: the file checks report it
            return {**section, key: str(p)}
        return section

    model = data.get("model")
    if isinstance(model, Mapping) and isinstance(model.get("backbone"), Mapping):
        data["model"] = {**model, "backbone": fix(model["backbone"], "pretrained", ("none", "imagenet"))}
    if isinstance(data.get("data"), Mapping):
        data["data"] = fix(data["data"], "path")
    return data


def _check_files(spec: Any, lines: LineMap) -> list[Problem]:
    problems = []
    bb = spec.model.backbone
    if bb is not None and bb.pretrained_source not in (None, "imagenet"):
        if not Path(bb.pretrained).is_file():
            loc = ("model", "backbone", "pretrained")
            problems.append(
                Problem(
                    format_loc(loc),
                    f"weights file not found: {bb.pretrained} (use none, imagenet or a state_dict path)",
                    *_line_of(lines, loc),
                )
            )
    return problems


def load_spec(path: str | Path, overrides: Iterable[str] = (), check_files: bool = True):
    """Read, override (`key.path=value`), validate. Raises SpecError with file, field path and line.
    check_files=False: see parse_spec."""
    from archsearch.spec.space import dimensions

    data, lines = load_yaml(path)
    data = apply_overrides(data, overrides, source=str(path))
    lines = override_lines(lines, overrides)
    dims = dimensions(data, lines, str(path))
    if dims:
        names = ", ".join(d.name for d in dims[:4]) + (", ..." if len(dims) > 4 else "")
        raise SpecError(
            [Problem("", f"this is a search space ({len(dims)} dimensions: {names}), not a concrete spec: "
                     "search it with `archsearch run`, or see concrete specs with `archsearch sample`",
                     *lines.get(dims[0].loc, (None, None)))], str(path))
    return parse_spec(data, lines, source=str(path), base_dir=Path(path).parent, check_files=check_files)


def apply_overrides(data: Any, overrides: Iterable[str], source: str | None = None) -> Any:
    """Apply `a.b.0.c=value` overrides (values parsed as YAML) to a copy of the data."""
    import copy

    overrides = list(overrides)
    if not overrides:
        return data
    data = copy.deepcopy(data) if data is not None else {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SpecError([Problem("--set", f"expected key=value, got {item!r}")], source)
        try:
            value, _ = parse_yaml(raw, "--set")
        except SpecError as e:
            raise SpecError([Problem(f"--set {key}", p.message) for p in e.problems], source) from None
        parts = _override_loc(key)
        value = _from_here(parts, value)
        node = data
        for i, part in enumerate(parts[:-1]):
            nxt = parts[i + 1]
            if isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int):
                raise SpecError([Problem(f"--set {key}", _out_of_range(parts[:i], node, part))], source)
            elif isinstance(node, dict):
                node = node.setdefault(part, [] if isinstance(nxt, int) else {})
            else:
                raise SpecError([Problem(f"--set {key}", f"{format_loc(parts[: i + 1])} is not a section")], source)
        last = parts[-1]
        if isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = value
        elif isinstance(node, dict):
            node[last] = value
        elif isinstance(node, list) and isinstance(last, int):
            raise SpecError([Problem(f"--set {key}", _out_of_range(parts[:-1], node, last))], source)
        else:
            raise SpecError([Problem(f"--set {key}", f"cannot set {format_loc(parts)}")], source)
    return data


PATH_FIELDS = (["data", "path"], ["model", "backbone", "pretrained"])


def _from_here(parts: list[str | int], value: Any) -> Any:
    """A relative file path given on the command line is relative to the working directory, as a
    shell user means it (a path written in the YAML file is relative to that file)."""
    if list(parts) not in PATH_FIELDS or not isinstance(value, str) or value in ("none", "imagenet"):
        return value
    try:
        p = Path(value).expanduser()
        return value if p.is_absolute() else str(p.resolve())
    except (RuntimeError, ValueError, OSError):
        return value  # left as written: the file checks report it


def _out_of_range(loc: list[str | int], items: list, index: int) -> str:
    return (f"{format_loc(loc)} has {len(items)} item(s), so index {index} is out of range "
            f"(0 to {len(items) - 1}; to add one, --set the whole list)")


def not_a_spec(data: Any, source: str | None) -> SpecError:
    """The error for a file whose top level is not a mapping (an empty file included)."""
    got = "the file is empty" if data is None else f"got {type(data).__name__}"
    return SpecError([Problem("", f"a spec is a mapping with a `model:` section; {got}")], source)


def _override_loc(key: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in key.strip().split(".")]


def override_lines(lines: LineMap, overrides: Iterable[str]) -> LineMap:
    """The YAML line map after `overrides`: a value set by `--set` (and all below it) is located by
    that --set, not by the file's line of the value it replaced."""
    out = dict(lines)
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep:
            continue
        loc = tuple(_override_loc(key))
        for k in [k for k in out if k[:len(loc)] == loc]:
            del out[k]
        out[loc] = (f"--set {item}", None)
    return out
