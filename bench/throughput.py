"""Training throughput: the seeds' DataLoader loop vs archsearch's trainer, same model, same steps.

Baseline (how the seed reports train): torchvision.datasets.FashionMNIST + ToTensor + Normalize,
a DataLoader (batch 128, shuffle), Adam, fp32, one .to(device) per batch.
archsearch: prepare_train_val (uint8 tensors on the device, per-batch normalisation) + fit(), at
fp32 and at train.precision=auto (bf16 autocast where the hardware runs it natively).

Both run the same number of optimizer steps on the same model (freshly built with the same seed);
warm-up steps are excluded. Every measurement runs in a fresh Python process, as the seeds' script
and `archsearch train` would: one side's allocations and process-wide settings (archsearch's
trainer raises glibc's malloc thresholds on the CPU, see archsearch/train/allocator.py) do not
reach the other. Baseline and archsearch (precision=auto) alternate for --repeats rounds and the
medians are compared: single runs of either side move by 10-20 % on a small shared CPU. On the CPU
two more rows show what the malloc setting is worth: archsearch without it (ARCHSEARCH_MALLOC=system)
and the seeds' loop with it (medians over the same rounds). Prints img/s, the ratio to the baseline and the achieved GFLOP/s
(training ≈ 3 × forward FLOPs per image).

    python bench/throughput.py                 # CPU, S1 CustomNet and S0 CNN
    python bench/throughput.py --models "S3 small VGG"
    python bench/throughput.py --device cuda --steps 400
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

from archsearch.build import build_model, summarize
from archsearch.build.blocks import FastDropout, Flatten, Stack
from archsearch.data import prepare_train_val
from archsearch.spec import load_spec
from archsearch.train import fit, seed_everything
from archsearch.train.allocator import tune_cpu_allocator
from fmnist_files import torchvision_root
from machine import describe

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"S1 CustomNet": ROOT / "examples/s1_customnet.yaml", "S0 CNN": ROOT / "examples/s0_cnn.yaml",
          "S3 small VGG": ROOT / "examples/s3_small_vgg.yaml"}


def as_seed_model(model: nn.Module) -> nn.Module:
    """The same network as the seed reports write it: nn.Sequential, nn.Flatten, nn.Dropout, out-of-place
    activations (archsearch's Stack, Flatten and FastDropout are its speed-ups, see the README)."""
    if isinstance(model, FastDropout):
        return nn.Dropout(model.p)
    if isinstance(model, Flatten):
        return nn.Flatten(model.start_dim, model.end_dim)
    if hasattr(model, "inplace"):
        model.inplace = False
        return model
    for name, child in model.named_children():
        setattr(model, name, as_seed_model(child))
    return nn.Sequential(*model) if isinstance(model, Stack) else model


def baseline(spec, device: torch.device, steps: int, warmup: int, root: Path, workers: int) -> float:
    import torchvision.transforms as T
    from torchvision.datasets import FashionMNIST

    seed_everything(0)
    model = as_seed_model(build_model(spec)).to(device)
    ds = FashionMNIST(str(root), train=True, download=False,
                      transform=T.Compose([T.ToTensor(), T.Normalize((0.2860,), (0.3530,))]))
    loader = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=True, num_workers=workers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    done, t0 = 0, 0.0
    while done < steps + warmup:
        for x, y in loader:
            if done == warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            loss.item()  # the seeds log the running loss every step
            done += 1
            if done == steps + warmup:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * 128 / (time.perf_counter() - t0)


def archsearch_rate(spec, device: torch.device, steps: int, precision: str, compile_: bool = False) -> float:
    spec = spec.model_copy(update={
        "data": spec.data.model_copy(update={"train_size": steps * 128, "val_size": 256, "augment": [], "val_fraction": 0.02,
                                             "test_size": None}),
        "train": spec.train.model_copy(update={"epochs": 2, "batch_size": 128, "precision": precision,
                                               "compile": compile_,
                                               "scheduler": spec.train.scheduler.model_copy(update={"name": "none"}),
                                               "early_stopping": None}),
    })
    seed_everything(0)
    data = prepare_train_val(spec.data, spec.model.input_shape, device=device)
    model = build_model(spec)
    result = fit(model, data, spec.train, device=device)
    return result.history[-1].img_per_s  # epoch 2: warm


def measure(kind: str, name: str, args, root: Path, env: dict[str, str] | None = None) -> float:
    """One measurement in a fresh process: `kind` is baseline, baseline-tuned, auto, fp32 or compile."""
    cmd = [sys.executable, __file__, "--one", kind, "--models", name, "--root", str(root), "--device", args.device,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--workers", str(args.workers)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    rates = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("RATE ")]
    if out.returncode != 0 or not rates:
        sys.exit(f"{kind} measurement failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return float(rates[0])


def one(args) -> None:
    """The child side of measure(): print RATE <img/s>."""
    spec, device = load_spec(MODELS[args.models[0]]), torch.device(args.device)
    if args.one.startswith("baseline"):
        if args.one == "baseline-tuned":
            tune_cpu_allocator()
        rate = baseline(spec, device, args.steps, args.warmup, Path(args.root), args.workers)
    else:
        rate = archsearch_rate(spec, device, args.steps, "fp32" if args.one == "fp32" else "auto", args.one == "compile")
    print(f"RATE {rate}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=150, help="timed optimizer steps per configuration")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--workers", type=int, default=0, help="baseline DataLoader workers (the seeds use 0)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="rounds of (baseline, archsearch auto), interleaved; the medians are reported")
    ap.add_argument("--models", nargs="*", default=["S1 CustomNet", "S0 CNN"], choices=list(MODELS))
    ap.add_argument("--compile", action="store_true", help="add a row with train.compile (CUDA graphs on GPU)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(args)
    device = torch.device(args.device)
    print(f"{describe()}\ndevice {device}  torch {torch.__version__}  threads {torch.get_num_threads()}  "
          f"steps {args.steps}  repeats {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(Path(tmp))
        for name in args.models:
            spec = load_spec(MODELS[name])
            flops = summarize(build_model(spec), spec.model.input_shape).flops
            kinds = [("baseline", {}), ("auto", {})]
            if device.type == "cpu":  # what archsearch's malloc setting is worth, to each side
                kinds += [("auto", {"ARCHSEARCH_MALLOC": "system"}), ("baseline-tuned", {})]
            runs: list[list[float]] = [[] for _ in kinds]
            for r in range(args.repeats):  # interleaved, so a slow spell of the machine hits every side
                for k, (kind, env) in enumerate(kinds):
                    runs[k].append(measure(kind, name, args, root, env))
                extra = (f" (system malloc {runs[2][-1]:,.0f}; DataLoader + tuned malloc {runs[3][-1]:,.0f})"
                         if len(kinds) > 2 else "")
                print(f"{name:13s} round {r + 1}: DataLoader {runs[0][-1]:7,.0f} img/s, archsearch auto "
                      f"{runs[1][-1]:7,.0f} img/s, {runs[1][-1] / runs[0][-1]:.2f}x{extra}", flush=True)
            bases, autos = runs[0], runs[1]
            base, auto = statistics.median(bases), statistics.median(autos)
            rows = [("seeds' DataLoader loop (fp32)", base), ("archsearch fp32", measure("fp32", name, args, root)),
                    ("archsearch precision=auto", auto)]
            if device.type == "cpu":
                rows += [("archsearch auto, system malloc", statistics.median(runs[2])),
                         ("DataLoader loop + tuned malloc", statistics.median(runs[3]))]
            if args.compile:
                rows.append(("archsearch auto + compile", measure("compile", name, args, root)))
            for label, rate in rows:
                print(f"{name:13s} {label:32s} {rate:9,.0f} img/s  {rate / base:5.2f}x  "
                      f"{3 * flops * rate / 1e9:7.1f} GFLOP/s")
            ratios = sorted(a / b for a, b in zip(autos, bases))
            print(f"{name:13s} RATIO archsearch(auto) / DataLoader = {auto / base:.2f}x (medians; per round "
                  f"{min(ratios):.2f}x to {max(ratios):.2f}x)"
                  + (f", with compile {rows[-1][1] / base:.2f}x" if args.compile else ""))


if __name__ == "__main__":
    main()
