"""The one error root of archsearch and the user-facing errors the CLI turns into exit code 2."""

from __future__ import annotations

from dataclasses import dataclass


class ArchsearchError(Exception):
    """Root of every error archsearch raises on purpose. The CLI prints it and exits 2."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where (field path, YAML line) and what."""

    path: str
    message: str
    line: int | str | None = None  # a str names where the value came from instead, e.g. "--set train.lr=x"
    column: int | None = None

    def __str__(self) -> str:
        where = [] if self.line is None else [self.line if isinstance(self.line, str) else f"line {self.line}"]
        if self.path:
            where.append(self.path)
        return ": ".join([*where, self.message])


class SpecError(ArchsearchError, ValueError):
    """A spec (YAML file or dict) is invalid. Carries every problem found, one per line."""

    def __init__(self, problems: list[Problem] | str, source: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        self.problems = list(problems)
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        head = f"{self.source}: " if self.source else ""
        n = len(self.problems)
        if n == 1:
            return f"{head}{self.problems[0]}"
        lines = [f"{head}{n} problems"] + [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class DataError(ArchsearchError):
    """A dataset cannot be found, read or split as the spec asks. `field` names the spec field at
    fault where one is (e.g. "data.val_size"), for callers that know its YAML line."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class BuildError(ArchsearchError):
    """A valid spec cannot be turned into a module (e.g. missing weights file, no cached weights)."""


class TrainingError(ArchsearchError):
    """Training stopped for a reason the user must see. `reason` is a short tag (e.g. 'nan_loss')."""

    def __init__(self, message: str, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


class TestSplitAccessError(ArchsearchError):
    """Something other than an explicit evaluation command tried to read the test split."""

    __test__ = False  # not a pytest test class
