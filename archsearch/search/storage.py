"""Optuna storages for one or many workers: SQLite (default) and PostgreSQL, with heartbeats.

- SQLite: the file is switched to write-ahead logging (readers never block the writer, so a
  dashboard polling the file cannot lock out a search) and every connection waits up to
  `SQLITE_BUSY_TIMEOUT` seconds for a writer instead of failing with 'database is locked'.
- PostgreSQL (and other server databases): at most POOL_SIZE pooled connections a process (the
  trial and its heartbeat thread; no overflow, pre-ping), disposed when the process ends, so K
  workers hold at most 2K connections (optuna#4449).
- Both: Optuna heartbeats, so a trial whose worker died (kill -9, power loss) is failed by the
  next worker that starts or asks for a trial, and re-queued once
  (RetryHeartbeatStaleTrialCallback) to resume from its last epoch checkpoint.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import optuna

from archsearch.errors import ArchsearchError
from archsearch.fs import check_creatable_dir, ensure_writable_dir
from archsearch.spec.search import url_problem

STUDIES_DIR = Path("studies")
SQLITE_BUSY_TIMEOUT = 300.0  # seconds a connection waits for another writer
HEARTBEAT_INTERVAL = 10  # seconds between a running trial's heartbeats
GRACE_PERIOD = 60  # seconds without a heartbeat before a trial counts as dead
MAX_RETRY = 1  # a dead worker's trial is re-queued this many times
OPEN_ATTEMPTS = 6  # workers starting together on a new storage race to create its schema; the losers retry
POOL_SIZE = 2  # server connections a process may hold: the trial's thread and its heartbeat thread


def default_storage(study: str, studies_dir: Path = STUDIES_DIR) -> str:
    return f"sqlite:///{studies_dir / f'{study}.db'}"


def sqlite_file(url: str) -> Path | None:
    """The database file of a sqlite:/// URL (None: not SQLite, or in memory)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def check_exists(url: str, what: str, studies_dir: Path = STUDIES_DIR) -> str:
    """A command that reads a study must not create an empty SQLite file for a mistyped URL."""
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        others = ", ".join(p.stem for p in sorted(studies_dir.glob("*.db"))) or "none"
        raise ArchsearchError(f"{what}: {path} does not exist (studies in {studies_dir}/: {others})")
    return url


def resolve_storage(study: str | None, storage: str | None, studies_dir: Path = STUDIES_DIR,
                    existing: bool = False) -> str:
    """--storage as given; else studies/<study>.db; else the only studies/*.db (several: an error
    listing them). `existing`: a SQLite file must exist already (commands that only read)."""
    if storage:
        return check_exists(storage, f"--storage {storage}", studies_dir) if existing else storage
    if study:
        url = default_storage(study, studies_dir)
        return check_exists(url, f"--study {study}", studies_dir) if existing else url
    found = sorted(studies_dir.glob("*.db"))
    if len(found) == 1:
        return f"sqlite:///{found[0]}"
    if not found:
        raise ArchsearchError(f"no studies in {studies_dir}/ (no *.db); run `archsearch run SPACE` here first, "
                              "or give --storage URL")
    names = ", ".join(p.stem for p in found)
    raise ArchsearchError(f"{len(found)} studies in {studies_dir}/: {names}; pick one with --study NAME "
                          "(or give --storage URL)")


def storage_error(url: str, e: Exception) -> ArchsearchError:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    if "upgrade" in text.lower() or "schema" in text.lower():
        return ArchsearchError(f"--storage {url}: the storage schema is older than this Optuna; run "
                               f"`optuna storage upgrade --storage {url}` first ({text})")
    return ArchsearchError(f"--storage {url}: cannot open the storage ({type(e).__name__}: {text})")


def check_reachable(url: str) -> None:
    """Connect to a server storage and disconnect, creating nothing (a mistyped or unreachable URL is
    named as such before other checks blame something else); for a new SQLite file, its folder can be made."""
    bad = url_problem(url)
    if bad:
        raise ArchsearchError(f"--storage {url}: {bad}")
    if url.startswith("sqlite:"):
        path = sqlite_file(url)
        if path is not None and not path.exists():
            check_creatable_dir(path.parent, f"--storage {url}")
        return
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except (ImportError, ModuleNotFoundError) as e:
        raise ArchsearchError(f"--storage {url}: a database driver is missing ({e})") from None
    except Exception as e:  # NoSuchModuleError (unknown dialect), ArgumentError, OperationalError, ...
        raise storage_error(url, e) from None


def _sqlite_wal(url: str) -> None:
    path = url.removeprefix("sqlite:///")
    if path in ("", ":memory:"):
        return
    ensure_writable_dir(Path(path).parent, f"--storage {url}")
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT) as con:
                if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    con.execute("PRAGMA journal_mode=WAL")  # persistent: stays set in the file
            return
        except sqlite3.OperationalError as e:
            # switching the mode takes the file exclusively and does not wait for the busy timeout:
            # another process switching it or creating the schema at the same moment says "locked"
            if "locked" not in str(e) or attempt == OPEN_ATTEMPTS - 1:
                raise ArchsearchError(f"--storage {url}: not a usable SQLite file ({e})") from None
            time.sleep(0.05 * 2 ** attempt)
        except sqlite3.Error as e:
            raise ArchsearchError(f"--storage {url}: not a usable SQLite file ({e})") from None


def _lost_schema_race(e: Exception) -> bool:
    """Whether opening failed only because another process created the tables at the same moment
    (Optuna checks, then creates: 'table ... already exists', a duplicate alembic_version row, or on
    PostgreSQL a duplicate row in pg_type for a table created twice)."""
    text = str(e)
    return ("already exists" in text or "pg_type_typname_nsp_index" in text
            or ("alembic_version" in text and ("UNIQUE" in text or "duplicate" in text)))


def make_storage(url: str, *, heartbeat_interval: int = HEARTBEAT_INTERVAL, grace_period: int = GRACE_PERIOD,
                 max_retry: int = MAX_RETRY, heartbeat: bool = True) -> optuna.storages.RDBStorage:
    """An RDBStorage for `url` configured as the module docstring says.

    Raises:
        ArchsearchError: the URL cannot be opened (one line naming it; a missing driver or an old
            schema say what to do).
    """
    import warnings

    if url.startswith("sqlite:///"):
        _sqlite_wal(url)
        engine_kwargs: dict = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    elif url.startswith("sqlite:"):
        raise ArchsearchError(f"--storage {url}: a SQLite URL is sqlite:///relative/path.db or sqlite:////abs/path.db")
    else:
        engine_kwargs = {"pool_size": POOL_SIZE, "max_overflow": 0, "pool_pre_ping": True}
    kw: dict = {}
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.8
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                if heartbeat:
                    kw = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period,
                          "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
                              max_retry=max_retry, inherit_intermediate_values=True)}
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kw)
        except ArchsearchError:
            raise
        except (ImportError, ModuleNotFoundError) as e:
            raise ArchsearchError(f"--storage {url}: a database driver is missing ({e})") from None
        except Exception as e:  # sqlalchemy OperationalError, ArgumentError, optuna's schema check ...
            if not _lost_schema_race(e) or attempt == OPEN_ATTEMPTS - 1:
                raise storage_error(url, e) from None
            time.sleep(0.05 * 2 ** attempt)
    raise AssertionError("unreachable")


def release(storage: optuna.storages.BaseStorage) -> None:
    """Close a storage's connections (engine disposal), e.g. before a worker exits."""
    storage = getattr(storage, "_backend", storage)  # optuna wraps an RDBStorage in a _CachedStorage
    engine = getattr(storage, "engine", None)
    if engine is not None:
        try:
            storage.remove_session()  # type: ignore[attr-defined]
        except Exception:
            pass
        engine.dispose()

