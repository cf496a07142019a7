"""Small file-system helpers shared by every stage: writable folders, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from archsearch.errors import ArchsearchError


def ensure_writable_dir(folder: Path, label: str) -> None:
    """Create `folder` (and parents) and check it is writable; ArchsearchError naming `label`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArchsearchError(f"{label}: cannot create {folder} ({e.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise ArchsearchError(f"{label}: {folder} is not writable")


def write_json(path: Path, obj: object) -> None:
    """Write JSON atomically (temporary file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)
