"""`archsearch run --workers K`: K worker processes on this machine sharing one study.

Each worker is `archsearch worker --study NAME --storage URL --trials N` (the same command joins
the study from another machine). With several GPUs each worker sees one (CUDA_VISIBLE_DEVICES,
round robin); on the CPU the cores are divided between them (torch threads). Their lines are
relayed prefixed with the worker's number. SIGINT / SIGTERM are passed on to every worker, which
ends its running trial as FAIL in the storage and closes its connections.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

THREADS_ENV = "ARCHSEARCH_THREADS"


def worker_env(index: int, workers: int, device: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    cores = os.cpu_count() or 1
    env[THREADS_ENV] = str(max(1, cores // workers))
    if device in (None, "auto", "cuda"):
        try:
            import torch

            n = torch.cuda.device_count()
        except Exception:
            n = 0
        if n > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(index % n)
    return env


def run_workers(*, workers: int, study: str, storage: str, trials: int, timeout: float | None,
                device: str | None, data_dir: str | None, echo: Callable[[str], None]) -> int:
    """Start `workers` worker processes, relay their output, wait; returns the worst exit code."""
    procs: list[subprocess.Popen] = []
    for i in range(workers):
        cmd = [sys.executable, "-m", "archsearch", "worker", "--study", study, "--storage", storage,
               "--trials", str(trials), "--name", f"w{i + 1}", "--no-summary"]
        if timeout is not None:
            cmd += ["--timeout", str(timeout)]
        if device is not None:
            cmd += ["--device", device]
        if data_dir is not None:
            cmd += ["--data-dir", data_dir]
        procs.append(subprocess.Popen(cmd, env=worker_env(i, workers, device), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, start_new_session=True))

    def relay(p: subprocess.Popen) -> None:
        assert p.stdout is not None
        for line in p.stdout:
            echo(line.rstrip("\n"))

    threads = [threading.Thread(target=relay, args=(p,), daemon=True) for p in procs]
    for t in threads:
        t.start()

    def forward(signum, frame) -> None:  # noqa: ARG001
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    for t in threads:
        t.join(timeout=5)
    bad = [c for c in codes if c != 0]
    return max(bad, key=abs) if bad else 0
