"""Trials per hour with 1 and with K worker processes on one study (SQLite default), and the ratio.

Each side runs `archsearch run SPACE --workers K --timeout S` on a fresh study in its own temporary
folder, with the same space (default: the digits space, 2 epochs a trial) and the same wall-clock
budget; the finished trials (complete + pruned) are counted from the storage afterwards.

    python bench/scale.py --seconds 120 --workers 2
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

ROOT = Path(__file__).resolve().parents[1]


def side(space: Path, workers: int, seconds: float, sets: list[str]) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "archsearch", "run", str(space), "--trials", "100000", "--timeout", str(seconds),
               "--workers", str(workers), "--study", "scale"]
        for s in sets:
            cmd += ["--set", s]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wall = time.perf_counter() - t0
        if out.returncode != 0:
            raise SystemExit(f"{workers} worker(s) failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        study = optuna.load_study(study_name="scale", storage=f"sqlite:///{Path(tmp) / 'studies' / 'scale.db'}")
        done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                             optuna.trial.TrialState.PRUNED)))
        return done, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", type=Path, default=ROOT / "spaces" / "digits_cnn.yaml")
    ap.add_argument("--seconds", type=float, default=120.0, help="wall-clock budget of each side (no new trial after it)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", dest="sets", action="append", default=["train.epochs=2", "search.pruner.name=none"],
                    help="spec overrides for both sides")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"space {args.space.name}, {args.seconds:.0f} s per side, {os.cpu_count()} CPU cores, overrides {args.sets}")
    one, wall1 = side(args.space, 1, args.seconds, args.sets)
    k, wallk = side(args.space, args.workers, args.seconds, args.sets)
    rate1, ratek = one / wall1 * 3600, k / wallk * 3600
    print(f"1 worker : {one:>5} trials in {wall1:6.1f} s = {rate1:8.0f} trials/hour")
    print(f"{args.workers} workers: {k:>5} trials in {wallk:6.1f} s = {ratek:8.0f} trials/hour")
    print(f"RATIO {args.workers} workers / 1 worker = {ratek / rate1:.2f}x")


if __name__ == "__main__":
    main()
