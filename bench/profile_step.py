"""Where a training step's time goes: torch.profiler over archsearch's trainer on S1 CustomNet.

    python bench/profile_step.py                # 60 steps of batch 128, precision auto
    python bench/profile_step.py --precision fp32
    python bench/profile_step.py --shapes       # ops grouped by input shape (which block, which layout)

Prints the ops by self CPU time and the share of the step spent in convolutions (oneDNN) versus
everything else (batch norm, activations, pooling, dropout, copies: memory-bound on a small CPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

from archsearch.build import build_model
from archsearch.data import prepare_train_val
from archsearch.spec import load_spec
from archsearch.train import fit, seed_everything
from machine import describe

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--shapes", action="store_true", help="group the ops by their input shapes")
    args = ap.parse_args()
    spec = load_spec(ROOT / "examples/s1_customnet.yaml")
    spec = spec.model_copy(update={
        "data": spec.data.model_copy(update={"train_size": args.steps * 128, "val_size": 256, "augment": [],
                                             "val_fraction": 0.02, "test_size": None}),
        "train": spec.train.model_copy(update={"epochs": 1, "batch_size": 128, "precision": args.precision,
                                               "scheduler": spec.train.scheduler.model_copy(update={"name": "none"}),
                                               "early_stopping": None}),
    })
    seed_everything(0)
    data = prepare_train_val(spec.data, spec.model.input_shape, device="cpu")
    model = build_model(spec)
    fit(model, data, spec.train)  # warm-up epoch
    with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
        result = fit(model, data, spec.train)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if "convolution" in e.key)
    print(f"{describe()}\nS1 CustomNet, batch 128, precision {result.precision}: "
          f"{result.history[-1].img_per_s:,.0f} img/s under the profiler")
    table = prof.key_averages(group_by_input_shape=True) if args.shapes else events
    print(table.table(sort_by="self_cpu_time_total", row_limit=25 if args.shapes else 15, max_name_column_width=45))
    print(f"convolutions (forward + backward): {conv / total:.0%} of self CPU time; everything else {1 - conv / total:.0%}")
    bn = sum(e.self_cpu_time_total for e in events if e.key == "aten::native_batch_norm_backward")
    print(f"batch-norm backward alone: {bn / total:.0%}")


if __name__ == "__main__":
    main()
