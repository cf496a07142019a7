"""Trial artifacts: uploads to a running trial, the confusion record, failures that only warn once."""

from __future__ import annotations

import json
import warnings

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta

from archsearch.search.artifacts import TrialArtifacts, confusion_json, confusion_png, confusion_record


def test_spec_uploads_to_a_running_trial_on_sqlite(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db")
    trial = study.ask()  # RUNNING
    artifacts = TrialArtifacts(tmp_path / "s")
    artifacts.spec(trial, {"name": "x", "train": {"lr": 0.01}})
    study.tell(trial, 1.0)
    (meta,) = get_all_artifact_meta(study.trials[0], storage=study._storage)
    assert (meta.filename, meta.mimetype) == ("spec.yaml", "text/plain")
    download_artifact(artifact_store=FileSystemArtifactStore(tmp_path / "s" / "artifacts"),
                      artifact_id=meta.artifact_id, file_path=str(tmp_path / "spec.yaml"))
    assert (tmp_path / "spec.yaml").read_text() == "name: x\ntrain:\n  lr: 0.01\n"


def test_a_failing_store_warns_once_and_the_trial_goes_on(tmp_path):
    (tmp_path / "blocker").write_text("a file where the study folder should be")
    study = optuna.create_study()
    artifacts = TrialArtifacts(tmp_path / "blocker")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            trial = study.ask()
            artifacts.spec(trial, {"name": "x"})
            assert artifacts.upload(trial, "confusion.json", b"{}") is None
            study.tell(trial, 0.5)
    assert len(caught) == 1 and "trial artifacts are not saved" in str(caught[0].message)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2


def test_confusion_record_and_picture():
    cm = torch.tensor([[3, 1], [0, 4]])
    record = confusion_record(cm, ["cat", "dog"], 2, "accuracy", 0.875)
    assert json.loads(confusion_json(record)) == record
    assert record["matrix"] == [[3, 1], [0, 4]] and record["accuracy"] == 7 / 8
    assert confusion_png(cm, ["cat", "dog"]).startswith(b"\x89PNG")
