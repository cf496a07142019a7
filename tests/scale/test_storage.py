"""Storage problems a user meets: an old schema, an unreachable server — one clear error, exit 2."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import optuna

from archsearch.errors import ArchsearchError
from archsearch.search.storage import make_storage, release
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


def _open_when_all_ready(url: str, barrier, results) -> None:  # in a forked child: imports are the parent's
    barrier.wait()
    try:
        release(make_storage(url))
        results.put("ok")
    except ArchsearchError as e:
        results.put(str(e))


def _open_together(url: str, n: int = 8) -> list[str]:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open_when_all_ready, args=(url, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return out


def test_workers_starting_together_on_a_new_sqlite_file_all_open_it(tmp_path):
    # Optuna checks for its tables, then creates them: without retries, 7 rounds in 10 lost the race
    # ('table studies already exists', a duplicate alembic_version row, 'database is locked')
    for k in range(2):
        url = f"sqlite:///{tmp_path / f'new{k}.db'}"
        assert _open_together(url) == ["ok"] * 8
        optuna.create_study(study_name="s", storage=url)  # and the schema is whole


def test_workers_starting_together_on_a_new_postgresql_database_all_open_it(postgres_url):
    import psycopg

    base, _, _ = postgres_url.rpartition("/")
    for k in range(2):
        with psycopg.connect(postgres_url, autocommit=True) as con:
            con.execute(f"CREATE DATABASE race{k}")
        url = f"{base}/race{k}"
        assert _open_together(url) == ["ok"] * 8
        optuna.create_study(study_name="s", storage=url)
