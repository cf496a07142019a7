"""Searchable values inside any spec field: {choice: [...]}, {int: [lo, hi]}, {float: [lo, hi]}.

A space is a spec whose raw data holds such nodes. `dimensions()` finds and checks them (with YAML
lines); `resolve()` replaces each by a value drawn from a `suggest` callback (Optuna's trial in
archsearch.search.resolve, the first/last/each option in the space checks), recursing into the
chosen option so a choice may hold whole sub-stacks with dimensions of their own. A list-valued
choice that stands as an element of a list (e.g. a layer stack) is spliced into that list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from archsearch.errors import Problem, SpecError

KINDS = ("choice", "int", "float")
_KEYS = {"choice", "int", "float", "step", "log", "name"}
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Dimension:
    """One search dimension. `name` is the Optuna parameter name (field path unless given)."""

    name: str
    kind: str  # choice | int | float
    loc: Loc
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False

    @property
    def structured(self) -> bool:
        """Options that are not plain scalars are suggested by index."""
        return self.kind == "choice" and any(isinstance(c, (dict, list)) for c in self.choices)


def is_dimension(node: Any) -> bool:
    return (
        isinstance(node, Mapping)
        and bool(node)
        and set(node) <= _KEYS
        and sum(k in node for k in KINDS) == 1
    )


def param_name(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


def _dimension_typo(node: Any) -> str | None:
    """What is wrong with a mapping that looks like a search dimension but is not one (a misspelt key),
    so the user hears about the key instead of the field's type error."""
    import difflib

    if not isinstance(node, Mapping) or not node or not all(isinstance(k, str) for k in node):
        return None
    kinds = [k for k in node if k in KINDS]
    unknown = [k for k in node if k not in _KEYS]
    if len(kinds) == 1 and unknown:
        hints = [f"'{k}'" + (f" (did you mean '{m[0]}'?)" if (m := difflib.get_close_matches(k, sorted(_KEYS), 1)) else "")
                 for k in unknown]
        return (f"unknown key {', '.join(hints)} in a search dimension; a dimension has one of choice / int / "
                "float and may have name, log, step")
    if not kinds and len(unknown) == 1 and len(node) <= 4 and isinstance(node[unknown[0]], list):
        m = difflib.get_close_matches(unknown[0], KINDS, 1, cutoff=0.8)  # 'input' (0.75 to 'int') is a field
        if m:
            return f"unknown key '{unknown[0]}': did you mean '{m[0]}' (a search dimension)?"
    return None


def _number(v: Any) -> bool:
    """A finite int or float within float range (Optuna and the extreme checks use floats)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond float range, e.g. 10**400
        return False


def parse_dimension(node: Mapping[str, Any], loc: Loc) -> Dimension:
    """Check one dimension node; raises ValueError with a message for the user."""
    name = node.get("name", param_name(loc))
    if not isinstance(name, str) or not name:
        raise ValueError("`name` must be a non-empty string")
    if "choice" in node:
        extra = set(node) - {"choice", "name"}
        if extra:
            raise ValueError(f"a choice takes no {', '.join(sorted(extra))}")
        opts = node["choice"]
        if not isinstance(opts, list) or not opts:
            raise ValueError("choice needs a non-empty list of options")
        return Dimension(name, "choice", loc, choices=tuple(opts))
    kind = "int" if "int" in node else "float"
    bounds = node[kind]
    if not isinstance(bounds, list) or len(bounds) != 2 or not all(_number(b) for b in bounds):
        raise ValueError(f"{kind} needs [low, high] numbers")
    lo, hi = bounds
    if kind == "int" and not all(float(b).is_integer() for b in bounds):
        raise ValueError("int bounds must be whole numbers")
    if lo > hi:
        raise ValueError(f"low ({lo}) is greater than high ({hi})")
    log = node.get("log", False)
    if not isinstance(log, bool):
        raise ValueError("log must be true or false")
    if log and lo <= 0:
        raise ValueError(f"a log range needs low > 0, got {lo}")
    step = node.get("step")
    if step is not None:
        if not _number(step) or step <= 0:
            raise ValueError("step must be a positive number")
        if log:
            raise ValueError("step and log cannot be combined")
        if kind == "int" and not float(step).is_integer():
            raise ValueError("an int step must be a whole number")
    return Dimension(name, kind, loc, low=lo, high=hi, step=step, log=log)


Suggest = Callable[[Dimension], Any]


def resolve(data: Any, suggest: Suggest, loc: Loc = ()) -> Any:
    """A copy of `data` with every dimension replaced by `suggest(dim)` (options resolved too)."""
    if is_dimension(data):
        dim = parse_dimension(data, loc)
        value = suggest(dim)
        if dim.kind == "choice" and isinstance(value, (dict, list)):
            index = next(i for i, c in enumerate(dim.choices) if c is value or c == value)
            return resolve(value, suggest, (*loc, "choice", index))
        return value
    if isinstance(data, Mapping):
        return {k: resolve(v, suggest, (*loc, k)) for k, v in data.items()}
    if isinstance(data, list):
        out: list[Any] = []
        for i, item in enumerate(data):
            value = resolve(item, suggest, (*loc, i))
            if is_dimension(item) and isinstance(value, list):
                out.extend(value)  # a chosen sub-stack is spliced into the surrounding list
            else:
                out.append(value)
        return out
    return data


def dimensions(data: Any, lines: Mapping[Loc, tuple[int, int]] | None = None, source: str | None = None) -> list[Dimension]:
    """Every dimension of a space (those inside options too), checked; SpecError lists all problems."""
    from archsearch.spec.io import format_loc

    found: list[Dimension] = []
    problems: list[Problem] = []
    lines = lines or {}

    def walk(node: Any, loc: Loc) -> None:
        typo = _dimension_typo(node)
        if typo:
            problems.append(Problem(format_loc(loc), typo, *lines.get(loc, (None, None))))
            return
        if is_dimension(node):
            try:
                dim = parse_dimension(node, loc)
            except ValueError as e:
                line = lines.get(loc, (None, None))
                problems.append(Problem(format_loc(loc), str(e), *line))
                return
            found.append(dim)
            if dim.kind == "choice":
                for i, opt in enumerate(dim.choices):
                    walk(opt, (*loc, "choice", i))
            return
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, (*loc, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*loc, i))

    walk(data, ())
    by_name: dict[str, Dimension] = {}
    for d in found:  # one name may recur (a shared parameter) only with the same range
        first = by_name.setdefault(d.name, d)
        if (first.kind, first.choices, first.low, first.high, first.step, first.log) != (
            d.kind, d.choices, d.low, d.high, d.step, d.log
        ):
            problems.append(Problem(format_loc(d.loc), f"parameter name {d.name!r} is used twice with different ranges",
                                    *lines.get(d.loc, (None, None))))
    if problems:
        raise SpecError(problems, source)
    return found


@dataclass
class Space:
    """A spec file whose fields may hold dimensions. `resolve(suggest)` gives a concrete Spec."""

    data: Any
    lines: Mapping[Loc, tuple[int, int]]
    source: str | None
    base_dir: Any
    dims: list[Dimension]

    @property
    def name(self) -> str | None:
        return self.data.get("name") if isinstance(self.data, Mapping) else None

    def resolve(self, suggest: Suggest):
        """The concrete Spec for the values `suggest` picks (SpecError if that spec is invalid)."""
        from archsearch.spec.io import parse_spec

        return parse_spec(resolve(self.data, suggest), dict(self.lines), self.source, self.base_dir)

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.data.get(name) if isinstance(self.data, Mapping) else None
        return value if isinstance(value, Mapping) else {}


def load_space(path: Any, overrides: Any = ()) -> Space:
    """Read a spec or a space; every dimension is checked (SpecError with YAML lines)."""
    from pathlib import Path

    from archsearch.spec.io import apply_overrides, load_yaml, override_lines

    data, lines = load_yaml(path)
    data = apply_overrides(data, overrides, source=str(path))
    lines = override_lines(lines, overrides)
    return space_from_data(data, str(path), Path(path).parent, lines)


def space_from_data(data: Any, source: str, base_dir: Any, lines: Any = None) -> Space:
    """A Space from plain data (e.g. stored in a study), checked like load_space."""
    from pathlib import Path

    path, lines = source, lines or {}
    if not isinstance(data, Mapping):
        from archsearch.spec.io import not_a_spec

        raise not_a_spec(data, str(path))
    dims = dimensions(data, lines, str(path))
    for section in ("search",):
        bad = [d for d in dims if d.loc and d.loc[0] == section]
        if bad:
            raise SpecError([Problem(param_name(d.loc), "the search section cannot itself be searched",
                                     *lines.get(d.loc, (None, None))) for d in bad], str(path))
    return Space(data, lines, str(path), Path(base_dir), dims)


def _pick(mode: str, target: Dimension | None = None, option: int = 0) -> Suggest:
    def suggest(dim: Dimension) -> Any:
        if dim.kind == "choice":
            if target is not None and dim.loc == target.loc:
                return dim.choices[option]
            return dim.choices[0 if mode == "low" else -1]
        value = dim.low if mode == "low" else dim.high
        if dim.kind == "int":
            return int(value)
        return float(value)

    return suggest


def extremes(space: Space, limit: int = 200) -> list[tuple[str, Suggest]]:
    """The space's extreme assignments, labelled: every dimension low, every dimension high, and
    each option of each choice (the rest low, then high); at most `limit`."""
    assignments: list[tuple[str, Suggest]] = [("all low", _pick("low")), ("all high", _pick("high"))]
    for dim in space.dims:
        if dim.kind == "choice":
            for i in range(len(dim.choices)):
                for mode in ("low", "high"):
                    assignments.append((f"{dim.name} = option {i} (others {mode})", _pick(mode, dim, i)))
    return assignments[:limit]


def check_space(space: Space, limit: int = 200) -> tuple[int, list[Problem]]:
    """Resolve the space at its extremes (`extremes`) and validate each spec (shapes included).

    Returns (specs checked, problems); each problem names the assignment that produced it."""
    found: dict[str, tuple[Problem, str, int]] = {}  # problem → (itself, first assignment, how many had it)
    checked = 0
    for label, suggest in extremes(space, limit):
        checked += 1
        try:
            space.resolve(suggest)
        except SpecError as e:
            for p in {f"{p.path}|{p.message}": p for p in e.problems}.values():
                key = f"{p.path}|{p.message}"
                first, where, n = found.get(key, (p, label, 0))
                found[key] = (first, where, n + 1)
    # a problem every assignment has does not depend on the dimensions: no [when ...] for it
    problems = [Problem(p.path, p.message + (f" [when {label}]" if n < checked else ""), p.line, p.column)
                for p, label, n in found.values()]
    return checked, problems
