"""A real PostgreSQL server on loopback for the multi-worker tests (Debian's postgresql package).

initdb refuses to run as root, so as root the server runs as the `postgres` user in a temporary
data folder; it listens on 127.0.0.1 only, on a free port, and is stopped after the tests."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg")
    root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="archsearch-pg-", dir="/tmp"))
    data = folder / "data"
    as_user = ["runuser", "-u", "postgres", "--"] if root else []
    if root:
        shutil.chown(folder, "postgres")
        folder.chmod(0o700)
    port = _free_port()

    def run(*cmd: str) -> None:
        out = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {out.stdout}{out.stderr}")

    run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    run(pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=50 -c fsync=off", "start")
    try:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True) as con:
            con.execute("CREATE DATABASE archsearch")
        yield f"postgresql://postgres@127.0.0.1:{port}/archsearch"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def connections(url: str) -> int:
    """Client connections to the archsearch database now (ours excluded)."""
    import psycopg

    with psycopg.connect(url) as con:
        row = con.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = 'archsearch' "
                          "AND pid <> pg_backend_pid()").fetchone()
    return int(row[0])
