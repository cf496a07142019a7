"""Where decoded datasets are cached on disk, and atomic save / quick load of those caches.

Environment:
    ARCHSEARCH_CACHE: cache root (default ~/.cache/archsearch).
    ARCHSEARCH_DATA: an extra folder searched for dataset files.
    ARCHSEARCH_OFFLINE: "1" / "true" / "yes" forbids every download (tests set it).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

CACHE_VERSION = 1


def cache_root() -> Path:
    """$ARCHSEARCH_CACHE or ~/.cache/archsearch (not created here)."""
    env = os.environ.get("ARCHSEARCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "archsearch"


def data_env_dir() -> Path | None:
    """$ARCHSEARCH_DATA, when set."""
    env = os.environ.get("ARCHSEARCH_DATA")
    return Path(env).expanduser() if env else None


def offline() -> bool:
    """True when $ARCHSEARCH_OFFLINE forbids downloads."""
    return os.environ.get("ARCHSEARCH_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def tensor_cache_path(key: str) -> Path:
    """File holding the decoded tensors of `key` (dataset-split)."""
    return cache_root() / "tensors" / f"{key}.v{CACHE_VERSION}.pt"


def save_atomic(obj: object, path: Path) -> None:
    """torch.save to a temp file beside `path`, then os.replace: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is ordinary data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_tensors(key: str, build: Callable[[], dict]) -> tuple[dict, bool]:
    """The dict cached under `key`, or build() saved there first.

    The dict holds "images" (uint8 [N, C, H, W]), "labels" (int64 [N]), "classes", "source".
    A cache that cannot be read is rebuilt; one that cannot be written is only skipped.

    Returns:
        (the dict, whether it came from the cache).
    """
    path = tensor_cache_path(key)
    if path.is_file():
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict) and {"images", "labels", "classes", "source"} <= obj.keys():
                return obj, True
        except Exception:  # a corrupt cache is rebuilt below
            pass
    obj = build()
    try:
        save_atomic(obj, path)
    except OSError:  # read-only home: work without a cache
        pass
    return obj, False
