"""Hypothesis throws mutated spaces and specs at the loaders, as data and as YAML text (duplicate
keys, `!!python` tags, deep nesting, huge and negative numbers, unicode, tabs, BOMs, alias bombs):
every outcome is a Space/Spec or a clean SpecError within a time limit. The CLI rejects bad spaces
with exit 2, one `error:` message, no traceback and no study storage written."""

from __future__ import annotations

import copy
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from archsearch.errors import ArchsearchError, SpecError
from archsearch.spec import SearchSpec, Spec, load_spec
from archsearch.spec.io import load_yaml, parse_yaml, validation_problems
from archsearch.spec.layers import LAYER_TYPES
from archsearch.spec.space import Dimension, Space, check_space, load_space, space_from_data
from tests.conftest import EXAMPLES, ROOT
from tests.spec.test_fuzz import _paths

SPACES = sorted((ROOT / "spaces").glob("*.yaml"))
SPACE_TEXTS = [p.read_text(encoding="utf-8") for p in SPACES]
SPACE_DATA = [load_yaml(p)[0] for p in SPACES]
SPEC_TEXTS = [p.read_text(encoding="utf-8") for p in EXAMPLES]

SECONDS = 10.0  # a load (+ a few extreme checks) takes milliseconds, 2,000-deep nesting ~1 s on a busy CI machine
HANG = 30.0  # ... and a load still running after this is interrupted, so a hang fails instead of blocking
CHECKS = 6  # extreme specs resolved per fuzzed space (check_space's own limit is 200)
FUZZ = settings(
    deadline=None,  # timed by _outcome instead, with a hard stop for hangs
    # no explain phase: its line tracer slows the pure-Python YAML parser ~10x on Python 3.11
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


# ---------------------------------------------------------------- values and data-level mutations

BIG = [0, -1, -3, 2**31, 2**63, 10**30, -(10**30), 10**400, -(10**400)]
WORDS = [
    "conv2d", "linear", "repeat", "relu", "same", "none", "imagenet", "", " ", "1e-3", "4GiB", "-4GiB",
    "9" * 400 + "GiB", "é∂", "ключ", "名前", "😀", "\ufeff", "\t", "a\x00b", "\u202e", "~nosuchuser/w.pt",
    "../../etc/passwd", "x" * 300, "!!python/object/apply:os.system", "{choice: [1]}", "<<", "*a",
]  # fmt: skip
NUMS = st.one_of(
    st.integers(-10, 300),
    st.sampled_from([*BIG, 1e400, -1e400, float("nan"), 0.5, 1e-9, -1e-9, 5e-324]),
    st.floats(),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMS, st.integers(-(10**12), 10**12), st.text(max_size=10),
                    st.sampled_from(WORDS))
NAMES = st.one_of(st.sampled_from(["width", "depth", "lr", "activation", "kernel", "optimizer", "head"]),
                  st.text(max_size=6), SCALARS)
LAYERS = st.fixed_dictionaries(
    {"type": st.sampled_from([*LAYER_TYPES, "conv3d", "", "Linear"])},
    optional={k: NUMS for k in ("out", "kernel", "stride", "padding", "p", "n", "groups", "dilation")}
    | {"layers": st.builds(lambda: [{"type": "batchnorm"}]), "body": st.builds(lambda: [{"type": "se"}])},
)
OPTIONS = st.one_of(SCALARS, LAYERS, st.lists(LAYERS, max_size=3), st.lists(SCALARS, max_size=3))
DIMS = st.one_of(
    st.fixed_dictionaries({"choice": st.lists(OPTIONS, max_size=4)}, optional={"name": NAMES}),
    st.fixed_dictionaries({"choice": OPTIONS}),
    *[
        st.fixed_dictionaries({kind: st.lists(NUMS, max_size=3)},
                              optional={"step": NUMS, "log": st.booleans() | SCALARS, "name": NAMES})
        for kind in ("int", "float")
    ],
    st.dictionaries(st.sampled_from(["choice", "int", "float", "step", "log", "name", "bogus"]), SCALARS, max_size=4),
)


def _deep(depth: int, kind: str) -> Any:
    node: Any = 1
    for _ in range(depth):
        node = [node] if kind == "list" else {"a": node}
    return node


DEEP = st.builds(_deep, st.integers(1, 200), st.sampled_from(["list", "dict"]))
VALUES = st.one_of(
    st.recursive(SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                 max_leaves=6),
    DIMS,
    LAYERS,
    DEEP,
)


def _typo(key: Any) -> Any:
    return key[:-1] if isinstance(key, str) and len(key) > 1 else f"{key}_"


@st.composite
def mutated_data(draw, bases: list[Any]) -> Any:
    """A copy of one base with 1–3 edits: replace, delete, add an unknown key or element, rename a
    key, negate or blow up a number, or reuse a parameter name."""
    data = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        key, old = path[-1], parent[path[-1]]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add", "rename", "number"]))
        if action == "replace":
            parent[key] = draw(VALUES)
        elif action == "delete":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8) | st.sampled_from(["name", "type", "choice", "int", "bogus"]))] = draw(VALUES)
        elif action == "add":
            parent.insert(key, draw(VALUES))
        elif action == "rename" and isinstance(parent, dict):
            parent[_typo(key)] = parent.pop(key)
        elif isinstance(old, (int, float)) and not isinstance(old, bool):
            parent[key] = draw(st.sampled_from([-old, old * 10**30, 10**400, 1e400, -1, 0]))
        else:
            parent[key] = draw(DIMS)
    return data


# ---------------------------------------------------------------- text-level mutations

TAGS = [
    '!!python/object/apply:os.system ["echo pwned > pwned.txt"]', "!!python/name:os.system",
    "!!python/object/new:tuple [[1]]", "!!python/none ''", "!!binary aGk=", "!!set {a, b}", "!!omap [{a: 1}]",
    "!!timestamp 2020-01-01", "!!int abc", "!!int 0x_", "!!bool maybe", "!!float nope", "!!str [1, 2]",
    "!!map abc", "!!seq abc", "!custom x", "!<tag:yaml.org,2002:python/none> ''", "2020-01-01",
]  # fmt: skip
NUMBERS = [
    "1e400", "-1e400", str(10**30), str(-(10**30)), "9" * 400, "9" * 5000, ".inf", "-.inf", ".nan", "0x_", "0b_",
    "._", "1_000", "0o17", "1:30", "-0", "-1", "-128", "1e-400", "0.0", "+1", "0777", "0xFF",
]  # fmt: skip
UNICODE = ["ключ: значение", "名前: 😀", "é: ∂", "na\u200bme: x", "\u202e: x", "\U0001f600: 1", "model\u00a0: x"]
BOMB = "\n".join(
    ["b0: &b0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 10)}]" for i in range(1, 9)]
)
ALIASES = [BOMB, "r: &r [*r, *r]", "m: &m {a: *m, b: *m}", "base: &x {lr: 1}\nlr: {<<: *x}", "x: *undefined"]
KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][\w]*):(.*)$")
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")


def _key_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if KEY_LINE.match(line)] or [0]


def duplicate_key(text: str, i: int) -> str:
    """Repeat the i-th `key:` line right after itself (a block key: the first copy is null)."""
    lines = text.splitlines() or [""]
    n = _key_lines(lines)[i % len(_key_lines(lines))]
    return "\n".join([*lines[: n + 1], lines[n], *lines[n + 1 :]]) + "\n"


def tag_value(text: str, i: int, payload: str) -> str:
    """Give the i-th `key:` line the value `payload` (a tag, a timestamp ...)."""
    lines = text.splitlines() or [""]
    n = _key_lines(lines)[i % len(_key_lines(lines))]
    m = KEY_LINE.match(lines[n])
    if m:
        lines[n] = f"{m.group(1)}{m.group(2)}: {payload}"
    return "\n".join(lines) + "\n"


def deep_nesting(text: str, depth: int, kind: str) -> str:
    """Add a top-level key whose value is nested `depth` levels deep in flow style."""
    value = "[" * depth + "]" * depth if kind == "list" else "{a: " * depth + "1" + "}" * depth
    return text + f"\ndeep: {value}\n"


def replace_number(text: str, i: int, payload: str | None) -> str:
    """Replace the i-th number with `payload`, or negate it (payload None)."""
    found = list(NUMBER.finditer(text))
    if not found:
        return text
    m = found[i % len(found)]
    new = payload if payload is not None else (m.group(0)[1:] if m.group(0).startswith("-") else "-" + m.group(0))
    return text[: m.start()] + new + text[m.end() :]


def add_line(text: str, i: int, line: str) -> str:
    """Insert `line` (unindented: a top-level key) before the i-th key line, or at the end."""
    lines = text.splitlines() or [""]
    keys = [k for k in _key_lines(lines) if not lines[k].startswith(" ")]
    n = keys[i % len(keys)] if keys and i % 2 else len(lines)
    return "\n".join([*lines[:n], *line.splitlines(), *lines[n:]]) + "\n"


def tab_indent(text: str, i: int) -> str:
    """Indent the i-th indented line with a tab instead of spaces."""
    lines = text.splitlines() or [""]
    indented = [k for k, line in enumerate(lines) if line.startswith("  ")] or [0]
    n = indented[i % len(indented)]
    lines[n] = "\t" + lines[n].lstrip(" ")
    return "\n".join(lines) + "\n"


def insert_char(text: str, i: int, char: str) -> str:
    """Insert `char` (a BOM, NUL, control or odd unicode character) at position i."""
    i %= len(text) + 1
    return text[:i] + char + text[i:]


def reindent(text: str, i: int, shift: int) -> str:
    """Indent the i-th line by `shift` more spaces, or cut its first -`shift` characters."""
    lines = text.splitlines() or [""]
    n = i % len(lines)
    lines[n] = " " * shift + lines[n] if shift > 0 else lines[n][-shift:]
    return "\n".join(lines) + "\n"


def truncate(text: str, i: int) -> str:
    """The first i characters (a file cut short)."""
    return text[: i % (len(text) + 1)]


LINE = st.integers(0, 200)
CHARS = ["\ufeff", "\x00", "\x07", "\x1b", "\t", "\r", "\u2028", "\ud800", "&", "*", "!", "%", "@", "`", "|", ">",
         "'", '"', "{", "[", ":", "#", "-", "?"]  # fmt: skip
MUTATIONS: dict[str, tuple[Callable[..., str], st.SearchStrategy]] = {  # name: (function, its extra arguments)
    "duplicate_key": (duplicate_key, st.tuples(LINE)),
    "tag_value": (tag_value, st.tuples(LINE, st.sampled_from(TAGS))),
    "deep_nesting": (deep_nesting, st.tuples(st.sampled_from([65, 100, 200, 300, 2000]) | st.integers(1, 200),
                                             st.sampled_from(["list", "dict"]))),
    "replace_number": (replace_number, st.tuples(LINE, st.sampled_from([*NUMBERS, None]))),
    "add_line": (add_line, st.tuples(LINE, st.sampled_from([*UNICODE, *ALIASES, "\ufeffa: 1", "a: 1\na: 2"]))),
    "tab_indent": (tab_indent, st.tuples(LINE)),
    "insert_char": (insert_char, st.tuples(st.integers(0, 5000), st.sampled_from(CHARS))),
    "reindent": (reindent, st.tuples(LINE, st.integers(-4, 4))),
    "truncate": (truncate, st.tuples(st.integers(0, 5000))),
}


@st.composite
def mutated_text(draw, texts: list[str], datas: list[Any]) -> tuple[str, list[str]]:
    """YAML text — a base file as written (comments, anchors) or a data-mutated base dumped by
    yaml.safe_dump — with 1–3 text-level mutations. Returns (text, names of the mutations)."""
    if draw(st.booleans()):
        text = draw(st.sampled_from(texts))
    else:
        data = draw(mutated_data(datas))
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=draw(st.booleans()),
                              default_flow_style=draw(st.sampled_from([False, None])))
    names = draw(st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=3))
    for name in names:
        function, args = MUTATIONS[name]
        text = function(text, *draw(args))
    return text, names


# ---------------------------------------------------------------- the loaders under test

def _hang(signum: int, frame: Any) -> None:
    raise TimeoutError(f"still loading after {HANG:.0f} s: a hang")


def _outcome(load: Callable[[], Any]) -> Any:
    """`load()`'s result or its SpecError (clean: problems with messages), within SECONDS. Any
    other exception propagates and fails the test."""
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.setitimer(signal.ITIMER_REAL, HANG)
    start = time.perf_counter()
    try:
        result = load()
    except SpecError as e:
        assert isinstance(e, ArchsearchError)
        assert e.problems and all(isinstance(p.message, str) and p.message.strip() for p in e.problems), e.problems
        assert str(e).strip()
        result = e
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - start
    assert elapsed < SECONDS, f"took {elapsed:.2f} s (a hang?)"
    return result


def _first(dim: Dimension) -> Any:
    return dim.choices[0] if dim.kind == "choice" else dim.low


def _checked(space: Space) -> Space:
    """What `archsearch validate`/`run` do after loading: the search section, the extreme specs
    (a few), the first spec. SpecError on any problem."""
    try:
        SearchSpec.model_validate(space.section("search"))
    except ValidationError as e:
        raise SpecError(validation_problems(e, space.data, dict(space.lines), ("search",)), space.source) from None
    _, problems = check_space(space, limit=CHECKS)
    if problems:
        raise SpecError(problems, space.source)
    assert isinstance(space.resolve(_first), Spec)
    return space


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(folder: Path, text: str, encoding: str) -> Path:
    """The text as bytes on disk: UTF-8 (lone surrogates kept, as an editor might), with a BOM, or UTF-16."""
    raw = text.encode("utf-16" if encoding == "utf-16" else "utf-8", "surrogatepass")
    path = folder / "fuzzed.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + raw if encoding == "utf-8-sig" else raw)
    return path


def _space_from_text(text: str) -> Space:
    data, lines = parse_yaml(text, "<fuzzed>")
    return _checked(space_from_data(data, "<fuzzed>", ROOT, lines))


@settings(FUZZ, max_examples=300)
@given(data=mutated_data(SPACE_DATA))
def test_mutated_space_data_loads_or_fails_cleanly(data):
    _outcome(lambda: _checked(space_from_data(data, "<fuzzed>", ROOT)))


@settings(FUZZ, max_examples=350)
@given(case=mutated_text(SPACE_TEXTS, SPACE_DATA), from_file=st.booleans(),
       encoding=st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "utf-16"]))
def test_mutated_space_text_loads_or_fails_cleanly(fuzz_dir, case, from_file, encoding):
    text, _ = case
    if from_file:  # load_yaml: bytes on disk → read → parse
        path = _write(fuzz_dir, text, encoding)
        _outcome(lambda: _checked(load_space(path)))
    else:
        _outcome(lambda: _space_from_text(text))
    assert not (fuzz_dir / "pwned.txt").exists() and not Path("pwned.txt").exists()


@settings(FUZZ, max_examples=200)
@given(case=mutated_text(SPEC_TEXTS, [yaml.safe_load(t) for t in SPEC_TEXTS]))
def test_mutated_spec_text_loads_or_fails_cleanly(fuzz_dir, case):
    text, _ = case
    path = _write(fuzz_dir, text, "utf-8")
    result = _outcome(lambda: load_spec(path))
    assert isinstance(result, (Spec, SpecError))


# ---------------------------------------------------------------- regressions: each was a traceback or a hang

GOOD = """\
model:
  input: [1, 8, 8]
  layers:
    - {type: repeat, n: 2, layers: [{type: conv2d, out: 4}, {type: batchnorm}]}
    - {type: flatten}
    - {type: linear}
search: {budgets: {gpu_memory: 4GiB}}
"""


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("out: 4", "out: !!int abc", "cannot read 'abc' as int"),  # ValueError from PyYAML's constructor
        ("out: 4", "out: !!bool maybe", "cannot read 'maybe' as bool"),  # KeyError
        ("out: 4", "out: 0x_", "cannot read '0x_' as int"),  # ValueError, no tag needed
        ("out: 4", "out: " + "9" * 5000, "as int"),  # beyond Python's 4300-digit int limit
        ("  input:", "  0b_: 1\n  input:", "cannot read '0b_' as int"),  # the same in a key
        ("search:", BOMB + "\nsearch:", "more than 10,000 values"),  # 10**9 values once expanded
        ("search:", "r: &r [*r, *r]\nsearch:", "more than 10,000 values"),  # recursive alias: 2**64 visits
        ("n: 2", "n: 1000000000000", "more than 10,000 layers"),  # the shape walk ran 10**12 times
        ("n: 2, layers: [{type: conv2d, out: 4}, {type: batchnorm}]",
         "n: 100000, layers: [{type: repeat, n: 100000, layers: [{type: batchnorm}]}]", "more than 10,000 layers"),
        ("4GiB", ".inf", "finite"),  # OverflowError in int(inf)
        ("4GiB", "'" + "9" * 400 + "GiB'", "finite"),
        ("out: 4", "out: {int: [1, " + "9" * 400 + "]}", "int needs [low, high] numbers"),  # OverflowError
        ("search:", "data: {dataset: image_folder, path: \"a\\0b\"}\nsearch:", None),  # ValueError: embedded null
    ],
)
def test_hostile_yaml_is_a_clean_spec_error(write, old, new, needle):
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    path = write("hostile.yaml", text)
    for load in (lambda: _checked(load_space(path)), lambda: load_spec(path)):
        result = _outcome(load)
        if needle is None:
            continue
        assert isinstance(result, SpecError), text
        assert any(needle in p.message for p in result.problems), result


def test_unknown_home_in_a_weights_path_is_reported(write):
    text = "model:\n  backbone: {name: resnet18, pretrained: ~nosuchuser_archsearch/w.pt}\n"
    result = _outcome(lambda: load_spec(write("s.yaml", text)))  # was RuntimeError from Path.expanduser
    assert isinstance(result, SpecError) and "weights file not found" in str(result)


def test_base_files_load():
    for path in SPACES:
        assert isinstance(_outcome(lambda: _checked(load_space(path))), Space), path


# ---------------------------------------------------------------- the CLI: exit 2, one message, nothing written

def _bad_spaces() -> dict[str, str]:
    """Bad spaces made by the mutations above (each must be rejected before any trial)."""
    text = dict(zip((p.stem for p in SPACES), SPACE_TEXTS))
    digits, cnn, mlp, resnet = text["digits_cnn"], text["fmnist_cnn"], text["optuna_mlp"], text["fmnist_resnet"]
    cnn_lines = cnn.splitlines()
    epochs = [i for i in _key_lines(cnn_lines) if "epochs:" in cnn_lines[i]][0]
    return {
        "duplicate_key": duplicate_key(cnn, _key_lines(cnn_lines).index(epochs)),
        "python_tag": digits.replace("epochs: 6", 'epochs: !!python/object/apply:os.system ["echo pwned > pwned.txt"]'),
        "deep_nesting": deep_nesting(mlp, 200, "list"),
        "huge_number": digits.replace("3.0e-2", "1e400"),  # float dimension with an infinite high
        "negative_size": cnn.replace("choice: [16, 32, 48]", "choice: [-16, 32, 48]"),  # fails in check_space
        "unicode_key": digits.replace("model:", "modèl:", 1),
        "tab": tab_indent(mlp, 3),
        "alias_bomb": add_line(digits, 0, BOMB),
        "searched_search": resnet.replace("trials: 30", "trials: {int: [1, 5]}"),
        "huge_repeat_own_storage": digits.replace("int: [1, 2]", "int: [1, 1000000000000]").replace(
            "  trials: 12", "  trials: 12\n  storage: sqlite:///evil.db"),
        "unreadable_int": digits.replace("epochs: 6", "epochs: !!int 0x_"),
    }


# `run` on one bad space per stage that rejects it — reading the file, YAML, dimensions, the extreme
# specs (with its own storage URL) — as a `run` start imports torch and optuna (~5 s of CPU each);
# `validate` on all of them in one call
RUN = ["bad_utf8", "python_tag", "searched_search", "huge_repeat_own_storage", "negative_size"]


@pytest.mark.slow
def test_cli_rejects_bad_spaces_with_exit_2_and_writes_nothing(tmp_path):
    files = []
    for name, text in _bad_spaces().items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        assert isinstance(_outcome(lambda: _checked(load_space(path))), SpecError), name  # else `run` would train
        files.append(path)
    (tmp_path / "bad_utf8.yaml").write_bytes(b"\xef\xbb\xbfmodel:\n  input: [1, 8, 8]\xff\n")
    files.append(tmp_path / "bad_utf8.yaml")
    before = sorted(tmp_path.rglob("*"))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "archsearch", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=180)

    run_files = [p for p in files if p.stem in RUN]
    assert len(run_files) == len(RUN)
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda p: cli("run", p.name, "--trials", "1"), run_files))
    for path, r in zip(run_files, runs):
        assert r.returncode == 2, (path.name, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr, (path.name, r.stderr)
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and path.name in errors[0], (path.name, r.stderr)
    r = cli("validate", *(p.name for p in files))
    assert r.returncode == 2 and "Traceback" not in r.stderr and not r.stdout.strip(), r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert sorted(e.split(":")[1].strip() for e in errors) == sorted(p.name for p in files), r.stderr
    assert sorted(tmp_path.rglob("*")) == before  # no studies/, no *.db, no pwned.txt


@pytest.mark.parametrize(
    ("dimension", "needle"),
    [
        ("{choice: [4, 8], nmae: width}", "unknown key 'nmae' (did you mean 'name'?) in a search dimension"),
        ("{int: [4, 8], lg: true}", "unknown key 'lg' (did you mean 'log'?)"),
        ("{chioce: [4, 8]}", "did you mean 'choice'"),
    ],
)
def test_a_misspelt_dimension_key_is_named_not_reported_as_a_type_error(write, dimension, needle):
    result = _outcome(lambda: _checked(load_space(write("typo.yaml", GOOD.replace("out: 4", f"out: {dimension}", 1)))))
    assert isinstance(result, SpecError)
    assert any(needle in p.message for p in result.problems), result.problems
    assert not any("valid integer" in p.message for p in result.problems)
