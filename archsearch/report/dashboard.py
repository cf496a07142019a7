"""`archsearch dashboard`: optuna-dashboard over a study's storage, serving the trials' artifacts.

The server is optuna-dashboard's WSGI app (optuna_dashboard.wsgi) in a threaded wsgiref server we
bind ourselves, so a busy port is one clear error and the printed URL names the study. Artifacts
are read from studies/<study>/artifacts/ (archsearch.search.artifacts), relative to the folder
`archsearch run` ran in, for every study of the storage.
"""

from __future__ import annotations

import errno
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, BinaryIO
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from archsearch.errors import ArchsearchError
from archsearch.search.artifacts import ARTIFACTS, artifact_dir
from archsearch.search.storage import STUDIES_DIR, resolve_storage
from archsearch.search.study import open_study, study_summaries


@dataclass
class Target:
    """What the dashboard opens: a storage and, when known, the study to link to."""

    storage: str
    study: str | None
    study_id: int | None


def find_target(study: str | None, storage: str | None, studies_dir: Path = STUDIES_DIR) -> Target:
    """The storage URL and the study id to link to; unknown studies give open_study's error."""
    url = resolve_storage(study, storage, studies_dir, existing=True)  # a missing SQLite file is not created
    if study is None:
        names = [s.study_name for s in study_summaries(url)]
        if len(names) != 1:
            return Target(url, None, None)
        study = names[0]
    loaded = open_study(study, url, create=False)
    return Target(url, study, loaded._storage.get_study_id_from_name(study))


class StudiesArtifactStore:
    """An Optuna ArtifactStore over studies/*/artifacts/ (read) and one study's folder (write).

    Artifact ids are UUIDs, so the folder holding an id is its study's; folders are listed on each
    read so studies started after the dashboard show their artifacts too. Files uploaded from the
    dashboard go to `home`, the folder of the study given (or the storage's only study)."""

    def __init__(self, studies_dir: Path, home: Path | None) -> None:
        self.studies_dir, self.home = studies_dir, home

    def _stores(self) -> list[Any]:
        from optuna.artifacts import FileSystemArtifactStore

        folders = sorted(self.studies_dir.glob(f"*/{ARTIFACTS}"))
        if self.home is not None and self.home not in folders:
            folders.insert(0, self.home)
        return [FileSystemArtifactStore(f) for f in folders]

    def open_reader(self, artifact_id: str) -> BinaryIO:
        from optuna.artifacts.exceptions import ArtifactNotFound

        for store in self._stores():
            try:
                return store.open_reader(artifact_id)
            except ArtifactNotFound:
                continue
        raise ArtifactNotFound(f"artifact {artifact_id} is in none of {self.studies_dir}/*/{ARTIFACTS}/")

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        from optuna.artifacts import FileSystemArtifactStore

        if self.home is None:
            raise ArchsearchError("the dashboard was started without --study: uploads have no study folder")
        self.home.mkdir(parents=True, exist_ok=True)
        FileSystemArtifactStore(self.home).write(artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        from optuna.artifacts.exceptions import ArtifactNotFound

        for store in self._stores():
            try:
                store.remove(artifact_id)
                return
            except ArtifactNotFound:
                continue


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a browser's open connection does not keep Ctrl-C waiting


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the page polls every few seconds
        pass


def bind(app: Callable, host: str, port: int) -> WSGIServer:
    """Listen on host:port (port 0: any free port); a busy port is an ArchsearchError naming it."""
    try:
        return make_server(host, port, app, server_class=_Server6 if ":" in host else _Server,
                           handler_class=_QuietHandler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ArchsearchError(f"--port {port}: port {port} on {host} is already in use; stop what listens "
                                  "there or pick another with --port") from None
        raise ArchsearchError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None


def url_for(server: WSGIServer, host: str, study_id: int | None) -> str:
    """The page to open: the study's page when it is known, else the list of studies."""
    shown = f"[{host}]" if ":" in host else host
    page = f"studies/{study_id}" if study_id is not None else ""
    return f"http://{shown}:{server.server_port}/dashboard/{page}"


def make_app(target: Target, studies_dir: Path = STUDIES_DIR) -> Callable:
    """optuna-dashboard's WSGI app over the target's storage, with the studies' artifact folders."""
    try:
        from optuna_dashboard import wsgi
    except ImportError:
        raise ArchsearchError("`archsearch dashboard` needs optuna-dashboard: pip install optuna-dashboard") from None
    home = artifact_dir(studies_dir / target.study) if target.study else None
    return wsgi(target.storage, artifact_store=StudiesArtifactStore(studies_dir, home))


def serve(server: WSGIServer) -> None:
    """Serve until Ctrl-C or SIGTERM, then close the socket; both are a normal stop."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()  # only there can signals be handled
    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if main:
            signal.signal(signal.SIGTERM, previous)


def launch(study: str | None = None, storage: str | None = None, host: str = "127.0.0.1", port: int = 8080,
           studies_dir: Path = STUDIES_DIR, echo: Callable[[str], None] = print) -> None:
    """Open the storage, bind host:port, print the URL and serve until stopped.

    Args:
        study: the study to link to (default: the only one in the storage).
        storage: an Optuna storage URL (default: sqlite:///studies/<study>.db or the only studies/*.db).
        host: the address to listen on; 127.0.0.1 keeps the dashboard to this machine.
        port: the port; 0 picks a free one.
        studies_dir: where `archsearch run` keeps studies (*.db and <study>/artifacts/).
        echo: where the URL is printed.
    """
    target = find_target(study, storage, studies_dir)
    server = bind(make_app(target, studies_dir), host, port)
    which = f"study {target.study}" if target.study else "all studies"
    echo(f"optuna-dashboard: {which} in {target.storage}, artifacts from {studies_dir}/*/{ARTIFACTS}/ "
         "(Ctrl-C stops)")
    echo(url_for(server, host, target.study_id))
    serve(server)
