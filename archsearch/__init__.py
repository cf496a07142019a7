"""archsearch: declarative architecture search for PyTorch.

The public API is imported lazily so that `import archsearch` (and the CLI's --help) stays fast and
does not import torch until a model is built.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["ArchsearchError", "SpecError", "Spec", "load_spec", "parse_spec", "build_model", "summarize"]

_LAZY = {
    "ArchsearchError": "archsearch.errors",
    "SpecError": "archsearch.errors",
    "Spec": "archsearch.spec",
    "load_spec": "archsearch.spec",
    "parse_spec": "archsearch.spec",
    "build_model": "archsearch.build",
    "summarize": "archsearch.build",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'archsearch' has no attribute {name!r}")
