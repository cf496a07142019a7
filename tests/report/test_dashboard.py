"""`archsearch dashboard` over a real tiny digits study: trials, user attrs and artifacts via its HTTP API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import optuna
import pytest
import yaml

from archsearch.errors import ArchsearchError
from archsearch.report.dashboard import find_target
from archsearch.search.storage import resolve_storage
from archsearch.search import run_search
from archsearch.spec.search import SearchSpec
from archsearch.spec.space import load_space
from tests.conftest import ROOT

SPACE = ROOT / "spaces" / "digits_cnn.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def wait_until_up(proc: subprocess.Popen, base: str, seconds: float = 30.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the dashboard exited early: {proc.communicate()}"
        try:
            return json.loads(get(f"{base}/api/studies"))
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError(f"the dashboard did not answer on {base} within {seconds} s")


def empty_study(tmp_path, name: str) -> str:
    (tmp_path / "studies").mkdir(exist_ok=True)
    url = f"sqlite:///{tmp_path}/studies/{name}.db"
    optuna.create_study(study_name=name, storage=url)
    return url


def test_dashboard_serves_trials_attrs_and_artifacts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = load_space(SPACE, ["train.epochs=1", "search.pruner.name=none"])
    run_search(space, SearchSpec.model_validate(space.section("search")), study_name="t", trials=3,
               echo=lambda s: None)
    storage = f"sqlite:///{tmp_path}/studies/t.db"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "archsearch", "dashboard", "--storage", storage, "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        studies = wait_until_up(proc, base)["study_summaries"]
        (study_id,) = [s["study_id"] for s in studies if s["study_name"] == "t"]
        trials = json.loads(get(f"{base}/api/studies/{study_id}"))["trials"]
        assert len(trials) == 3 and all(t["state"] == "Complete" for t in trials)
        with_confusion = 0
        for t in trials:
            attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
            assert {"spec", "params", "flops", "memory_bytes", "device", "status"} <= set(attrs)
            assert {p["name"] for p in t["params"]} >= {"width", "depth", "lr"}
            files = {a["filename"]: a for a in t["artifacts"]}
            spec = yaml.safe_load(get(f"{base}/artifacts/{study_id}/{t['trial_id']}/{files['spec.yaml']['artifact_id']}"))
            # the dashboard cuts attrs at 1024 characters: the whole spec is the artifact
            assert json.dumps(spec).startswith(attrs["spec"]) and spec["model"]["num_classes"] == 10
            if attrs["status"] == "ok" and "duplicate_of" not in attrs:  # a twin's result is its original's
                assert {"confusion.json", "confusion.png"} <= set(files)
                cm = json.loads(get(f"{base}/artifacts/{study_id}/{t['trial_id']}/{files['confusion.json']['artifact_id']}"))
                assert len(cm["matrix"]) == 10 and cm["split"] == "val"
                assert cm["accuracy"] == pytest.approx(float(attrs["val_metric"]))  # the best weights' confusion
                png = get(f"{base}/artifacts/{study_id}/{t['trial_id']}/{files['confusion.png']['artifact_id']}")
                assert png.startswith(b"\x89PNG") and files["confusion.png"]["mimetype"] == "image/png"
                with_confusion += 1
        assert with_confusion >= 1
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err  # SIGTERM is a normal stop
    assert f"http://127.0.0.1:{port}/dashboard/studies/{study_id}" in out.splitlines()


def test_busy_port_is_one_line_and_exit_2(tmp_path):
    storage = empty_study(tmp_path, "busy")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "archsearch", "dashboard", "--storage", storage, "--port", str(port)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--port {port}" in lines[0] and "in use" in lines[0]


def test_storage_is_found_or_the_error_lists_the_choices(tmp_path):
    studies = tmp_path / "studies"
    with pytest.raises(ArchsearchError, match="no studies"):
        resolve_storage(None, None, studies)
    url = empty_study(tmp_path, "a")
    assert resolve_storage(None, None, studies) == f"sqlite:///{studies / 'a.db'}"
    target = find_target(None, None, studies)
    assert (target.study, target.storage) == ("a", url)
    empty_study(tmp_path, "b")
    with pytest.raises(ArchsearchError, match="2 studies in .*: a, b; pick one with --study"):
        resolve_storage(None, None, studies)
    assert find_target("b", None, studies).study_id is not None
    with pytest.raises(ArchsearchError, match="--study c: .*c.db does not exist .*a, b"):
        find_target("c", None, studies)
    with pytest.raises(ArchsearchError, match="--study nope: no such study .*existing: a"):
        find_target("nope", url, studies)  # open_study(create=False)'s error
