"""What a process per trial costs: the same trials in the worker, in forked trial processes, and under auto.

Both sides run `archsearch run` on a fresh study in a temporary folder with the same space and the
same number of trials; the space searches only `train.seed` over a fixed network, so every trial
does the same work and the difference is the isolation itself (fork, a fresh storage connection,
process exit). Digits trials of 2 epochs (well under a second) are the worst case; a Fashion-MNIST
trial takes tens of seconds on this CPU.

    python bench/isolation.py --trials 40
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

SPACE = """\
name: isolation
model:
  input: [1, 8, 8]
  num_classes: 10
  layers:
    - {type: conv2d, out: 16}
    - {type: batchnorm}
    - {type: activation, fn: relu}
    - {type: maxpool}
    - {type: flatten}
    - {type: linear}
data: {dataset: digits, val_fraction: 0.2}
train: {optimizer: adam, lr: 0.01, batch_size: 64, epochs: %(epochs)d, seed: {int: [0, 1000000], name: seed}}
search: {sampler: {name: random, seed: 0}, pruner: {name: none}}
"""


def side(trials: int, epochs: int, isolate: str) -> tuple[float, float]:
    """(wall seconds of the whole command, mean seconds a trial as Optuna recorded it)."""
    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp) / "isolation.yaml"
        space.write_text(SPACE % {"epochs": epochs})
        cmd = [sys.executable, "-m", "archsearch", "run", str(space), "--trials", str(trials),
               "--set", f"search.isolate={isolate}"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if out.returncode != 0:
            raise SystemExit(f"isolate={isolate} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        study = optuna.load_study(study_name="isolation", storage=f"sqlite:///{Path(tmp) / 'studies' / 'isolation.db'}")
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        assert len(done) == trials, len(done)
        pids = {t.user_attrs["worker"] for t in done}
        expect = {"process": trials, "none": 1, "auto": None}[isolate]
        assert expect is None or len(pids) == expect, pids  # really one process per trial, or not
        per_trial = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done) / trials
        return wall, per_trial


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"digits, fixed CNN, {args.epochs} epochs a trial, {args.trials} trials a side, {os.cpu_count()} CPU cores")
    wall_in, trial_in = side(args.trials, args.epochs, "none")
    wall_iso, trial_iso = side(args.trials, args.epochs, "process")
    wall_auto, _ = side(args.trials, args.epochs, "auto")
    print(f"isolate: none (in the worker)     : {wall_in:6.1f} s in all, {trial_in * 1000:6.0f} ms a trial")
    print(f"isolate: process (one per trial)  : {wall_iso:6.1f} s in all, {trial_iso * 1000:6.0f} ms a trial")
    print(f"isolate: auto (the default)       : {wall_auto:6.1f} s in all")
    print(f"process overhead {(wall_iso - wall_in) / args.trials * 1000:+.0f} ms a trial; "
          f"RATIO trials/hour process / none = {wall_in / wall_iso:.2f}x, auto / none = {wall_in / wall_auto:.2f}x")


if __name__ == "__main__":
    main()
