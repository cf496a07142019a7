"""Small file-system helpers shared by every stage: writable folders, atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from archsearch.errors import ArchsearchError


def ensure_writable_dir(folder: Path, label: str) -> None:
    """Create `folder` (and parents) and check it is writable; ArchsearchError naming `label`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArchsearchError(f"{label}: cannot create {folder} ({e.strerror})") from None
    _probe(folder, f"{label}: {folder}")


def _probe(folder: Path, what: str) -> None:
    """Create and remove a file in `folder`: os.access says yes to root everywhere, creating a file is
    the real test (/proc, read-only mounts). ArchsearchError '<what> is not writable'."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".archsearch-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ArchsearchError(f"{what} is not writable ({e.strerror})") from None


def check_creatable_dir(folder: Path, label: str) -> None:
    """`folder` could be created and written, checked without creating it: its nearest existing
    ancestor is a writable folder (a command checks this before its work and creates the folder after)."""
    parent = folder.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ArchsearchError(f"{label}: cannot create {folder}: {parent} is a file")
    _probe(parent, f"{label}: " + (f"cannot create {folder}: {parent}" if parent != folder.absolute() else str(folder)))


def ensure_writable_file(path: Path, label: str) -> None:
    """`path` can be written as a file: not a folder, its folder creatable and writable (before any work)."""
    if path.is_dir():
        raise ArchsearchError(f"{label}: {path} is a folder; give a file name, such as {path / 'out.json'}")
    ensure_writable_dir(path.resolve().parent, label)


def write_json(path: Path, obj: object) -> None:
    """Write JSON atomically (temporary file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: Path, keys: tuple[str, ...] = ()) -> dict:
    """A JSON object from `path` holding `keys`; a damaged or foreign file is one ArchsearchError naming it."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ArchsearchError(f"{path}: cannot read it as JSON ({e}); restore or re-create the folder") from None
    if not isinstance(obj, dict):
        raise ArchsearchError(f"{path}: expected a JSON object, found {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ArchsearchError(f"{path}: lacks {', '.join(missing)} (not written by this archsearch, or damaged)")
    return obj
