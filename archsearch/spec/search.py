"""The `search:` section: objectives, sampler, pruner, budgets, storage of the Optuna study."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from archsearch.spec.base import NamedOption, PositiveInt, StrictModel

SIZE_PATTERN = r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*"  # '4GiB', '512 MB' (the unit is checked apart)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_bytes(value: Any) -> int:
    """'4GiB' / '512MB' / 1024 → bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '4GiB'")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"a size must be a finite number, got {value}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError("a size must be positive")
        return int(value)
    m = re.fullmatch(SIZE_PATTERN, str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"expected a size such as '4GiB' or '512MB', got {value!r}")
    n = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not math.isfinite(n):
        raise ValueError(f"a size must be a finite number, got {value!r}")
    if n <= 0:
        raise ValueError("a size must be positive")
    return int(n)


class SamplerSpec(NamedOption):
    name: Literal["tpe", "random", "grid", "cmaes", "nsga2", "qmc"] = "tpe"
    seed: int | None = None


class PrunerSpec(NamedOption):
    name: Literal["median", "successive_halving", "hyperband", "none"] = "median"
    warmup_epochs: Annotated[int, Field(ge=0)] = 1
    startup_trials: Annotated[int, Field(ge=0)] = 3


class Budgets(StrictModel):
    gpu_memory: int | None = Field(None, description="bytes, or a size such as '4GiB'")
    max_params: PositiveInt | None = None
    max_flops: PositiveInt | None = None
    max_epoch_seconds: Annotated[float, Field(gt=0)] | None = None

    @field_validator("gpu_memory", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        if v is None:
            return None
        n = parse_bytes(v)
        if n < 2**20:  # a bare number is bytes: `gpu_memory: 4` meant 4 GiB
            raise ValueError(f"{v!r} is {n:,} bytes, less than 1 MiB: write a size such as '4GiB' or '512MB'")
        return n


class HeartbeatSpec(StrictModel):
    """A running trial writes a heartbeat every `interval` s; one silent for `grace` s counts as
    dead (its worker was killed): it is failed and re-queued up to `max_retry` times."""

    interval: PositiveInt = 10
    grace: PositiveInt = 60
    max_retry: Annotated[int, Field(ge=0)] = 1

    @field_validator("grace")
    @classmethod
    def _grace_above_interval(cls, v: int, info: Any) -> int:
        interval = info.data.get("interval")
        if interval is not None and v <= interval:
            raise ValueError(f"grace ({v} s) must exceed interval ({interval} s), or living trials are failed")
        return v


def url_problem(url: str) -> str | None:
    """What is wrong with an Optuna storage URL that can be told without connecting (not a URL,
    unknown database, missing driver module), or None."""
    import difflib

    import sqlalchemy
    import sqlalchemy.dialects

    scheme = url.partition("://")[0].partition("+")[0]
    known = sqlalchemy.dialects.__all__
    close = difflib.get_close_matches(scheme, known, n=1, cutoff=0.75) if "://" in url else []
    if scheme not in known and close:  # a typo of a built-in one (a plugin dialect is left to SQLAlchemy)
        return f"unknown database {scheme!r}; did you mean {close[0]!r}? (built in: {', '.join(known)})"
    try:
        sqlalchemy.engine.make_url(url).get_dialect()
    except (ImportError, ModuleNotFoundError) as e:
        return f"a database driver is missing ({e})"
    except Exception as e:  # ArgumentError (not a URL), NoSuchModuleError (unknown dialect)
        return f"not a usable storage URL ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    return None


class SearchSpec(StrictModel):
    study: str | None = Field(None, description="study name; default: the spec file's stem")
    storage: str | None = Field(None, description="Optuna storage URL; default sqlite:///studies/<study>.db")
    trials: PositiveInt = 20
    timeout: Annotated[float, Field(gt=0)] | None = None
    objectives: list[Literal["val_metric", "params", "flops", "latency"]] = ["val_metric"]
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    budgets: Budgets = Budgets()
    keep_top_k: PositiveInt = 3
    max_consecutive_failures: PositiveInt = 5
    heartbeat: HeartbeatSpec = HeartbeatSpec()
    isolate: Literal["auto", "process", "none"] = Field(
        "auto", description="run each trial in its own forked process (a crash, leak or out-of-memory ends with "
        "it; about 0.2 s a trial): auto = on the CPU from the command line while trials take 2 s or more, "
        "process = always (CUDA included), none = trials run in the worker")

    @field_validator("storage")
    @classmethod
    def _usable_url(cls, v: str | None) -> str | None:
        bad = url_problem(v) if v else None
        if bad:
            raise ValueError(bad)
        return v

    @field_validator("objectives")
    @classmethod
    def _val_metric_first(cls, v: list[str]) -> list[str]:
        if not v or v[0] != "val_metric" or len(set(v)) != len(v):
            raise ValueError("objectives start with val_metric and name each objective once")
        return v
