"""Each trial in its own process: a child forked per trial trains it and exits.

Whatever a trial allocates — a leak, a fragmented allocator, the aftermath of an out-of-memory
error — goes back to the system when its process ends, and a trial that crashes or is killed
(the kernel's OOM killer, a segfault, kill -9) fails alone: the search records it, retries it once
from its last epoch checkpoint, and goes on.

How it stays cheap and safe. The parent (the worker loop) forks; the child inherits the imported
modules and the prepared train/val tensors copy-on-write, so it need not spend the seconds a fresh
interpreter takes to import torch. Fork has two traps, both avoided by keeping the parent from
computing:
- OpenMP: a child forked from a process whose OpenMP thread pool exists hangs in its first
  parallel op (measured here with torch 2.14). `claim()` sets the parent to one torch thread
  before any work, so the pool never starts there; each child restores the thread count.
- CUDA cannot be used in a child once the parent initialised it. The parent never touches the GPU
  (its availability check goes through NVML; data is prepared in the child; isolation on CUDA is
  opt-in, `search.isolate: process`, and not yet measured on a GPU).
`claim()` must therefore run at the start of a fresh process (the `run` and `worker` commands do);
a library caller who has already computed with torch gets trials in-process under `auto`, and a
clear error under `process`.

Measured cost: about 0.17 s a trial here (bench/isolation.py: a new storage connection, cold
caches), so `auto` gives the processes up when the first trials are short (study.py,
AUTO_MIN_TRIAL_SECONDS).
"""

from __future__ import annotations

import atexit
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from archsearch.errors import ArchsearchError

_state: dict[str, int | None] = {"threads": None}
_errors: dict[int, Path] = {}  # this process's private folder (mode 0700) for its trial processes' errors


def claim(threads: int | None = None) -> None:
    """Make this (fresh) process a safe parent for trial processes; children get `threads`
    torch threads (default: torch's own choice for this machine)."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # is_available() without touching the CUDA driver
    import torch

    _state["threads"] = threads or torch.get_num_threads()
    torch.set_num_threads(1)


def unclaim() -> None:
    """Trials will run in this process after all: give it its threads back."""
    if _state["threads"] is not None:
        import torch

        torch.set_num_threads(int(_state["threads"]))
        _state["threads"] = None


def claimed() -> bool:
    return _state["threads"] is not None


def use_processes(mode: str, device_type: str) -> bool:
    """Whether trials start in their own processes: `none` never; `process` always (an error where
    it cannot); `auto` on the CPU when this process was claimed (the worker loop may still give
    them up after its probe of the first trials)."""
    if mode == "none":
        return False
    possible = claimed() and hasattr(os, "fork")
    if mode == "process":
        if not possible:
            raise ArchsearchError("search.isolate: process needs a process started for it (the `archsearch run` "
                                  "and `archsearch worker` commands), on a system with fork()")
        return True
    return possible and device_type == "cpu"


def _die_with_parent(parent: int) -> None:
    """A killed worker takes its running trial process with it (Linux), so the trial is left
    RUNNING for the next start-up to fail and retry, as a killed in-process trial would be."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


USER_ERROR = 3  # a trial process's exit code when body() raised an ArchsearchError (see user_error)


def _error_dir() -> Path:
    """A folder only this process can write (made at its first fork, removed at its exit): the
    unpickled error never comes from a path another user could have placed a file at."""
    me = os.getpid()
    if me not in _errors:
        _errors[me] = Path(tempfile.mkdtemp(prefix="archsearch-trials-"))
        atexit.register(shutil.rmtree, _errors[me], True)
    return _errors[me]


def error_file(parent: int, child: int) -> Path:
    """Where trial process `child` of `parent` leaves the ArchsearchError that ended it."""
    return _errors[parent] / f"{child}.err"


def user_error(pid: int) -> ArchsearchError:
    """The ArchsearchError that ended trial process `pid` (exit code USER_ERROR), to raise in the
    parent as an in-process trial would have raised it: one message, exit 2, no traceback."""
    path = error_file(os.getpid(), pid)
    try:
        data = path.read_bytes()
        path.unlink()
        error = pickle.loads(data)
        if isinstance(error, ArchsearchError):
            return error
    except Exception:  # noqa: BLE001 - unreadable: say what is known
        pass
    return ArchsearchError(f"trial process {pid} stopped on an error it could not report")


def fork_trial(body: Callable[[], int]) -> int:
    """Fork; the child runs body() with the claimed thread count and exits with its return value
    (130 on KeyboardInterrupt; USER_ERROR on an ArchsearchError, left for `user_error`; 1 on any
    other exception, printed). Returns the child's pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    _error_dir()  # before the fork: the child writes into its parent's folder
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        # The parent nudges a running trial with SIGINT (wait_trial). A worker started in the background
        # (`nohup ... &`, a non-interactive shell) inherits SIGINT *ignored*, and so would its trial
        # processes: they would train on to the end. A trial process always honours the nudge.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _die_with_parent(parent)
        import torch

        torch.set_num_threads(int(_state["threads"] or 1))
        code = body()
    except KeyboardInterrupt:
        code = 130
    except ArchsearchError as e:
        try:
            data = pickle.dumps(e)
        except Exception:  # noqa: BLE001 - an unpicklable attribute: the message is what the user needs
            data = pickle.dumps(ArchsearchError(str(e)))
        error_file(parent, os.getpid()).write_bytes(data)
        code = USER_ERROR
    except BaseException:  # noqa: BLE001 — the child must never return into the parent's loop
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def wait_trial(pid: int, grace: float = 1.0) -> int:
    """Wait for a trial process; returns its exit code, or -N when signal N killed it.

    When this wait is interrupted (Ctrl-C reaches the child too; SIGTERM only this process), a
    child still running after `grace` seconds gets SIGINT; it is waited for while it records its
    trial as failed, then the KeyboardInterrupt goes on. Interrupted again: SIGKILL."""
    try:
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    except KeyboardInterrupt:
        pass
    nudge_at = time.monotonic() + grace
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if nudge_at is not None and time.monotonic() >= nudge_at:
                os.kill(pid, signal.SIGINT)
                nudge_at = None
            time.sleep(0.05)
        except KeyboardInterrupt:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
    raise KeyboardInterrupt


def exit_reason(code: int) -> str:
    """A trial process's end in words, for the trial's `reason`."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return f"the trial process was killed by {name}{hint}"
    return f"the trial process exited with code {code}"
