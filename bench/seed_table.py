"""The README's seed reproduction table: each seed system's example spec trained as its report did
(or in a stated reduced setting where that is too slow for the machine), over several seeds, then
measured once on the held-out test split.

Per row and seed: `archsearch train SPEC --set train.seed=S [overrides] --out DIR`, then
`archsearch evaluate DIR --split test` — the same code, in one process. Prints one markdown row
per system: report's number | test accuracy mean ± std | params | s/epoch | latency, and writes
everything to bench/results/seed_table.json (merged with earlier rows).

    python bench/seed_table.py --rows S1 --seeds 3
    python bench/seed_table.py --rows S0,S2,S3 --seeds 3            # reduced CPU settings
    python bench/seed_table.py --rows S0,S2,S3 --seeds 3 --full     # the reports' settings (GPU)
    python bench/seed_table.py --table                                 # the stored rows as markdown
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from machine import describe

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "seed_table.json"


@dataclass
class Row:
    key: str
    system: str
    spec: str
    report: str
    full: list[str] = field(default_factory=list)  # overrides for the report's setting (beyond the spec itself)
    reduced: list[str] = field(default_factory=list)  # overrides that make it fit a 2-core CPU
    reduced_note: str = ""
    folder: bool = False  # trains on a generated image folder (examples/make_image_folder.py)


S4_FOLDER = ["model.num_classes=5", "model.input=[3, 64, 64]", "model.backbone.pretrained=none",
             "model.backbone.freeze=[]", "data.resize=64", "train.lr=3.0e-3", "train.epochs=3", "train.batch_size=16"]

ROWS = [
    Row("S0", "S0 CNN (ReLU)", "s0_cnn.yaml", "92.88 % test",
        reduced=["train.epochs=1"], reduced_note="1 epoch instead of ≤100 with early stopping"),
    Row("S0L", "S0 CNN (LeakyReLU)", "s0_cnn_leaky.yaml", "93.34 % val (test not given)",
        reduced=["train.epochs=1"], reduced_note="1 epoch instead of ≤100 with early stopping"),
    Row("S1", "S1 CustomNet", "s1_customnet.yaml", "88 % test (1,000 images)"),
    Row("S2", "S2 AlexNet-like", "s2_alexnet.yaml", "90.8 % test",
        reduced=["train.epochs=1"], reduced_note="1 epoch instead of 10"),
    Row("S3", "S3 small VGG-like", "s3_small_vgg.yaml", "94.05 % test",
        reduced=["train.epochs=5", "train.batch_size=128"],
        reduced_note="5 epochs at batch 128 instead of 100 at batch 32"),
    Row("S4", "S4 ResNet-50 from scratch: the image-folder pipeline", "s4_resnet50_finetune.yaml",
        "55 % acc. from scratch (50 painters)", folder=True,
        full=S4_FOLDER, reduced=S4_FOLDER,
        reduced_note="a generated 5-class folder (500 PNGs, 64×64, imbalanced 150…50), no weights, nothing "
                     "frozen: the pipeline, not the report's data"),
]


def run_row(row: Row, seeds: list[int], full: bool, device: str | None, data_dir: str | None) -> dict:
    from archsearch.evaluate import evaluate_run
    from archsearch.spec import load_spec
    from archsearch.train.run import train_run

    overrides = list(row.full if full else row.reduced)
    folder = None
    if row.folder:
        import sys

        sys.path.insert(0, str(ROOT / "examples"))
        from make_image_folder import make

        folder = tempfile.TemporaryDirectory()
        make(Path(folder.name) / "painters", classes=5, most=150, least=50, size=64)
        overrides.append(f"data.path={Path(folder.name) / 'painters'}")
    per_seed = []
    for seed in seeds:
        spec = load_spec(ROOT / "examples" / row.spec, [*overrides, f"train.seed={seed}"])
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = train_run(spec, Path(tmp) / "run", device=device, data_dir=data_dir, progress=False)
            wall = time.perf_counter() - t0
            ev = evaluate_run(Path(tmp) / "run", "test", device=device, data_dir=data_dir, write=False)
        m = result.metrics
        per_seed.append({"seed": seed, "test_accuracy": ev["accuracy"], "macro_f1": ev["macro"]["f1"],
                         "balanced_accuracy": ev["balanced_accuracy"],
                         "val_accuracy": m["val"]["accuracy"], "best_epoch": m["best_epoch"],
                         "epochs_run": m["epochs_run"], "seconds_per_epoch": m["seconds_per_epoch"],
                         "train_seconds": wall, "params": m["params"], "device": m["device"],
                         "precision": m["precision"], "latency": ev["latency"], "test_n": ev["n"]})
        print(f"  {row.key} seed {seed}: test {ev['accuracy']:.4f} (val {m['val']['accuracy']:.4f}, "
              f"{m['epochs_run']} epochs, {m['seconds_per_epoch']:.1f} s/epoch)", flush=True)
    if folder is not None:
        folder.cleanup()
        overrides = [o for o in overrides if not o.startswith("data.path=")]
    accs = [r["test_accuracy"] for r in per_seed]
    return {
        "system": row.system, "spec": f"examples/{row.spec}", "report": row.report,
        "setting": "report" if full or not row.reduced else "reduced", "note": "" if full else row.reduced_note,
        "overrides": overrides, "seeds": seeds, "per_seed": per_seed,
        "test_mean": statistics.mean(accs), "test_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "params": per_seed[0]["params"], "seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in per_seed),
        "latency_ms_b1": per_seed[0]["latency"].get("ms_per_image_batch1"),
        "latency_ms_b256": per_seed[0]["latency"].get("ms_per_image_batch256"),
        "device": per_seed[0]["device"], "machine": describe(),
    }


def markdown(key: str, r: dict, command: str) -> str:
    setting = "as reported" if r["setting"] == "report" else f"reduced: {r['note']}"
    return (f"| {r['system']} | {r['report']} | **{100 * r['test_mean']:.2f} % ± {100 * r['test_std']:.2f} pp** "
            f"({len(r['seeds'])} seeds) | {r['params']:,} | {r['seconds_per_epoch']:.1f} s ({r['device']}) | "
            f"{r['latency_ms_b1']:.2f} ms (batch 1), {r['latency_ms_b256']:.3f} ms (batch 256) | {setting} | "
            f"`{command}` |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="S1", help="comma-separated: " + ", ".join(r.key for r in ROWS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="the reports' settings (slow on a CPU)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--table", action="store_true", help="print the stored rows as the README's table and exit")
    args = ap.parse_args()
    rows = {r.key: r for r in ROWS}
    if args.table:
        done = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        print("| system | report | archsearch test accuracy | params | time / epoch | latency (CPU, fp32) | setting | command |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for key in rows:
            if key in done:
                print(markdown(key, done[key], done[key]["command"]))
        return
    wanted = [k.strip() for k in args.rows.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in rows]
    if unknown:
        raise SystemExit(f"--rows: unknown {unknown}; known: {', '.join(rows)}")
    done = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for key in wanted:
        print(f"{key}: {rows[key].system} …", flush=True)
        r = run_row(rows[key], list(range(args.seeds)), args.full, args.device, args.data_dir)
        command = f"python bench/seed_table.py --rows {key} --seeds {args.seeds}" + (" --full" if args.full else "")
        r["command"] = command
        done[key] = r
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(done, indent=1) + "\n")
        print(markdown(key, r, command), flush=True)


if __name__ == "__main__":
    main()
