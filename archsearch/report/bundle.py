"""An export bundle folder → a checked Bundle record (the report never reads the test split itself).

The bundle contract (written by `archsearch best --export`):

- `metrics.json`: "classes" (names), "test" (classification_metrics on the test split, with
  "confusion_matrix" and "per_class"), "history" (the winner's per-epoch records);
- `confused.npz` (optional): "images" uint8 [N, C, H, W], "true" and "pred" int64 [N]
  (archsearch.evaluate.confused.confused_examples);
- `explain/*.png` (optional): figures written by `archsearch explain`.

The bundle may say which study and trial it came from ("search": {"study": ...}, "trial").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from archsearch.errors import ArchsearchError

# metrics.json and best.pt as archsearch.train.run names them (not imported: that module loads torch)
METRICS_FILE, WEIGHTS_FILE, CONFUSED_FILE, EXPLAIN_DIR = "metrics.json", "best.pt", "confused.npz", "explain"


@dataclass
class Bundle:
    """What the report draws from a bundle."""

    path: Path
    classes: list[str]
    test: dict
    history: list[dict]
    confused: dict[str, np.ndarray] | None = None
    explain: list[tuple[str, bytes]] = field(default_factory=list)  # (file name, PNG bytes)
    study: str | None = None  # the study the winner came from, when the bundle says
    trial: int | None = None  # the winner's trial number, when the bundle says
    retrain_history: list[dict] = field(default_factory=list)  # the exported weights' own training (train + val)
    over_seeds: dict | None = None  # test accuracy over the seeds of `best` (mean, std, ci95, n)
    seed: int | None = None  # the seed of the exported weights


def _study_of(metrics_path: Path) -> str | None:
    try:
        metrics = json.loads(metrics_path.read_text())
        return metrics["search"]["study"] if "test" in metrics else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_bundle(study_name: str, base: Path = Path(".")) -> Path | None:
    """The newest bundle of the study under `base`: a folder one or two levels down whose
    metrics.json names the study ("search": {"study": ...}), as `best --export DIR` writes it."""
    found = [p for pattern in (f"*/{METRICS_FILE}", f"*/*/{METRICS_FILE}") for p in Path(base).glob(pattern)
             if p.is_file() and _study_of(p) == study_name]
    return max(found, key=lambda p: p.stat().st_mtime).parent if found else None


def _fail(path: Path, what: str) -> ArchsearchError:
    return ArchsearchError(f"--bundle {path}: {what}")


def load_bundle(path: Path) -> Bundle:
    """Read and check a bundle folder; every problem is one ArchsearchError naming the file."""
    path = Path(path)
    if not path.is_dir():
        raise _fail(path, "no such folder")
    metrics_path = path / METRICS_FILE
    if not metrics_path.is_file():
        raise _fail(path, f"no {METRICS_FILE} in it (is it a folder written by `archsearch best --export`?)")
    try:
        metrics = json.loads(metrics_path.read_text())
    except (OSError, ValueError) as e:
        raise _fail(path, f"cannot read {METRICS_FILE} ({e})") from None
    missing = [k for k in ("classes", "test", "history") if k not in metrics]
    if "test" in missing and (path / WEIGHTS_FILE).is_file():
        raise _fail(path, "a run directory of `archsearch train`, not an export bundle: give a folder written by "
                          "`archsearch best --export`")
    if missing:
        raise _fail(path, f"{METRICS_FILE} lacks {', '.join(missing)}")
    classes, test = [str(c) for c in metrics["classes"]], metrics["test"]
    missing = [k for k in ("confusion_matrix", "per_class") if k not in test]
    if missing:
        raise _fail(path, f"{METRICS_FILE}: test lacks {', '.join(missing)}")
    cm = np.asarray(test["confusion_matrix"])
    if cm.shape != (len(classes), len(classes)):
        raise _fail(path, f"{METRICS_FILE}: test.confusion_matrix has shape {cm.shape} for {len(classes)} classes")
    search = metrics.get("search")
    return Bundle(path, classes, test, list(metrics["history"]), _load_confused(path, len(classes)),
                  _load_explain(path), study=search.get("study") if isinstance(search, dict) else None,
                  trial=metrics.get("trial") if isinstance(metrics.get("trial"), int) else None,
                  retrain_history=list(metrics.get("retrain_history") or []),
                  over_seeds=metrics.get("test_accuracy_over_seeds") if isinstance(
                      metrics.get("test_accuracy_over_seeds"), dict) else None,
                  seed=metrics["export"].get("seed") if isinstance(metrics.get("export"), dict) else None)


def _load_confused(path: Path, n_classes: int) -> dict[str, np.ndarray] | None:
    file = path / CONFUSED_FILE
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as z:
            data = {k: z[k] for k in ("images", "true", "pred")}
    except (OSError, ValueError, KeyError) as e:
        raise _fail(path, f"cannot read {CONFUSED_FILE} ({type(e).__name__}: {e}); "
                          "it needs images, true, pred") from None
    images, true, pred = data["images"], data["true"], data["pred"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise _fail(path, f"{CONFUSED_FILE}: images must be uint8 [N, C, H, W] with C 1 or 3, "
                          f"got {images.dtype} {list(images.shape)}")
    if not (len(images) == len(true) == len(pred)):
        raise _fail(path, f"{CONFUSED_FILE}: {len(images)} images, {len(true)} true and {len(pred)} pred labels")
    if len(true) and (min(true.min(), pred.min()) < 0 or max(true.max(), pred.max()) >= n_classes):
        raise _fail(path, f"{CONFUSED_FILE}: labels outside 0..{n_classes - 1}")
    return data


def _load_explain(path: Path) -> list[tuple[str, bytes]]:
    """The figures of the last `archsearch explain` (those its explain.json lists: an `--only` run
    leaves older PNGs beside its own); every PNG where there is no explain.json."""
    folder = path / EXPLAIN_DIR
    if not folder.is_dir():
        return []
    try:
        listed = [str(f["file"]) for f in json.loads((folder / "explain.json").read_text())["figures"]]
    except (OSError, ValueError, KeyError, TypeError):
        listed = None
    files = [folder / name for name in listed] if listed is not None else sorted(folder.glob("*.png"))
    return [(p.name, p.read_bytes()) for p in files if p.is_file() and p.parent == folder]
