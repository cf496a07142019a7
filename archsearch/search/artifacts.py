"""Trial artifacts in Optuna's artifact store (studies/<study>/artifacts/): what optuna-dashboard shows.

Each trial gets its resolved spec as `spec.yaml` when it starts and, when it trains to the end, the
validation confusion matrix of its best weights as `confusion.json` and `confusion.png`. Artifacts
are a convenience: a failed upload warns once per search and never fails the trial.
"""

from __future__ import annotations

import io
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

ARTIFACTS = "artifacts"  # the store's folder inside studies/<study>/


def artifact_dir(study_dir: Path) -> Path:
    """Where the trials of the study kept in `study_dir` store their artifacts."""
    return study_dir / ARTIFACTS


class TrialArtifacts:
    """Uploads a trial's files to a FileSystemArtifactStore; errors become one warning."""

    def __init__(self, study_dir: Path) -> None:
        self.folder = artifact_dir(study_dir)
        self._store: FileSystemArtifactStore | None = None
        self._warned = False

    def upload(self, trial: optuna.Trial, filename: str, data: bytes, mimetype: str | None = None) -> str | None:
        """Store `data` as `filename` on the (running) trial; the artifact id, or None on failure."""
        try:
            if self._store is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._store = FileSystemArtifactStore(self.folder)
            with tempfile.TemporaryDirectory(prefix="archsearch-artifact-") as tmp:
                path = Path(tmp) / filename  # upload_artifact names the artifact after the file
                path.write_bytes(data)
                return upload_artifact(artifact_store=self._store, file_path=str(path), study_or_trial=trial,
                                       mimetype=mimetype)
        except Exception as e:  # an artifact is never worth a trial
            self._warn_once(e)
            return None

    def spec(self, trial: optuna.Trial, spec_json: dict[str, Any]) -> None:
        """The resolved spec as spec.yaml (what `archsearch train` takes)."""
        # text/plain: browsers show it when clicked in the dashboard (mimetypes knows no .yaml here)
        self.upload(trial, "spec.yaml", yaml.safe_dump(spec_json, sort_keys=False).encode(), "text/plain")

    def confusion(self, trial: optuna.Trial, model: torch.nn.Module, data: Any, spec: Any,
                  device: torch.device, precision: str, best_epoch: int) -> None:
        """The val confusion matrix of `model` (fit leaves the best weights in it) as JSON and PNG.

        One extra pass over the val split: the per-epoch evaluations inside fit keep only metrics."""
        from archsearch.train.loop import evaluate_source

        try:
            ev = evaluate_source(model, data.val, spec.model.num_classes, spec.train.metric, device,
                                 precision, spec.train.channels_last)
        except Exception as e:
            self._warn_once(e)
            return
        record = confusion_record(ev.confusion, list(data.classes), best_epoch, spec.train.metric, ev.metric)
        self.upload(trial, "confusion.json", confusion_json(record).encode())
        png = confusion_png(ev.confusion, list(data.classes))
        if png is not None:
            self.upload(trial, "confusion.png", png)

    def _warn_once(self, e: Exception) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(f"trial artifacts are not saved to {self.folder} ({type(e).__name__}: {e}); "
                          "the search goes on without them", RuntimeWarning, stacklevel=3)


def confusion_record(cm: torch.Tensor, classes: list[str], epoch: int, metric: str, value: float) -> dict[str, Any]:
    """A JSON-ready confusion matrix: rows are true classes, columns predicted ones."""
    m = cm.long().tolist()
    total = sum(map(sum, m))
    return {"split": "val", "epoch": epoch, "classes": classes, "rows": "true", "columns": "predicted",
            "matrix": m, "accuracy": sum(m[i][i] for i in range(len(m))) / max(1, total),
            "metric": metric, "value": value}


def confusion_json(record: dict[str, Any]) -> str:
    """The record as JSON, one matrix row a line."""
    head = json.dumps({k: v for k, v in record.items() if k != "matrix"}, indent=1)
    rows = ",\n".join(f"  {json.dumps(r)}" for r in record["matrix"])
    return f'{head[:-2]},\n "matrix": [\n{rows}\n ]\n}}\n'


def confusion_png(cm: torch.Tensor, classes: list[str], cell: int = 28) -> bytes | None:
    """A heat map of row-normalised counts with the counts written in; None when Pillow is absent."""
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        return None
    n = cm.shape[0]
    counts = cm.long()
    share = counts.double() / counts.sum(1, keepdim=True).clamp(min=1)
    label_w = 6 + 7 * min(12, max((len(c) for c in classes), default=1))
    margin = label_w
    img = Image.new("RGB", (margin + n * cell + 4, margin + n * cell + 4), "white")
    draw = ImageDraw.Draw(img)
    for i in range(n):
        name = classes[i][:12] if i < len(classes) else str(i)
        draw.text((2, margin + i * cell + cell // 3), name, fill="black")  # true class, left
        draw.text((margin + i * cell + 3, margin - 14), name[:3], fill="black")  # predicted, top
        for j in range(n):
            v = float(share[i, j])
            shade = int(255 * (1 - v))
            x, y = margin + j * cell, margin + i * cell
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(shade, shade, 255), outline=(220, 220, 220))
            if counts[i, j]:
                draw.text((x + 3, y + cell // 3), str(int(counts[i, j])), fill="white" if v > 0.5 else "black")
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()
