"""Storage problems a user meets: an old schema, an unreachable server — one clear error, exit 2."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import optuna

from tests.conftest import ROOT

SPACE = ROOT / "spaces" / "digits_cnn.yaml"


def test_an_older_schema_names_optuna_storage_upgrade_and_is_not_migrated(tmp_path):
    db = tmp_path / "old.db"
    optuna.create_study(study_name="old", storage=f"sqlite:///{db}")
    with sqlite3.connect(db) as con:  # what a storage written by Optuna 2.4 says of itself
        con.execute("UPDATE alembic_version SET version_num = 'v2.4.0.a'")
    out = subprocess.run([sys.executable, "-m", "archsearch", "run", str(SPACE), "--trials", "1",
                          "--storage", f"sqlite:///{db}", "--study", "old"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "optuna storage upgrade" in out.stderr and str(db) in out.stderr
    with sqlite3.connect(db) as con:  # never a silent migration
        assert con.execute("SELECT version_num FROM alembic_version").fetchone() == ("v2.4.0.a",)
    assert not (tmp_path / "studies").exists()  # nothing half-written


def test_an_unusable_studies_folder_is_reported_before_any_trial(tmp_path):
    (tmp_path / "studies").write_text("a file where the studies folder should be")
    out = subprocess.run([sys.executable, "-m", "archsearch", "run", str(SPACE), "--trials", "1"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "studies" in out.stderr and "cannot create" in out.stderr
    assert "trial" not in out.stdout
