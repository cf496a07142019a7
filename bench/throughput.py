"""Training throughput: the seeds' DataLoader loop vs archsearch's trainer, same model, same steps.

Baseline (how the seed reports train): torchvision.datasets.FashionMNIST + ToTensor + Normalize,
a DataLoader (batch 128, shuffle), Adam, fp32, one .to(device) per batch.
archsearch: prepare_train_val (uint8 tensors on the device, per-batch normalisation) + fit(), at
fp32 and at train.precision=auto (bf16 autocast where the hardware runs it natively).

Both run the same number of optimizer steps on the same model (freshly built with the same seed);
warm-up steps are excluded. Baseline and archsearch (precision=auto) alternate for --repeats rounds
and the medians are compared: single runs of either side move by 10-20 % on a small shared CPU. Prints img/s, the ratio to the baseline and the achieved GFLOP/s
(training ≈ 3 × forward FLOPs per image).

    python bench/throughput.py                 # CPU, S1 CustomNet and S0 CNN
    python bench/throughput.py --models "S3 small VGG"
    python bench/throughput.py --device cuda --steps 400
"""

from __future__ import annotations

import argparse
import statistics
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
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"{describe()}\ndevice {device}  torch {torch.__version__}  threads {torch.get_num_threads()}  "
          f"steps {args.steps}  repeats {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(Path(tmp))
        for name in args.models:
            spec = load_spec(MODELS[name])
            flops = summarize(build_model(spec), spec.model.input_shape).flops
            bases, autos = [], []
            for r in range(args.repeats):  # interleaved, so a slow spell of the machine hits both sides
                bases.append(baseline(spec, device, args.steps, args.warmup, root, args.workers))
                autos.append(archsearch_rate(spec, device, args.steps, "auto"))
                print(f"{name:13s} round {r + 1}: DataLoader {bases[-1]:7,.0f} img/s, archsearch auto "
                      f"{autos[-1]:7,.0f} img/s, {autos[-1] / bases[-1]:.2f}x", flush=True)
            base, auto = statistics.median(bases), statistics.median(autos)
            fp32 = archsearch_rate(spec, device, args.steps, "fp32")
            rows = [("seeds' DataLoader loop (fp32)", base), ("archsearch fp32", fp32),
                    ("archsearch precision=auto", auto)]
            if args.compile:
                rows.append(("archsearch auto + compile", archsearch_rate(spec, device, args.steps, "auto", True)))
            for label, rate in rows:
                print(f"{name:13s} {label:32s} {rate:9,.0f} img/s  {rate / base:5.2f}x  "
                      f"{3 * flops * rate / 1e9:7.1f} GFLOP/s")
            ratios = sorted(a / b for a, b in zip(autos, bases))
            print(f"{name:13s} RATIO archsearch(auto) / DataLoader = {auto / base:.2f}x (medians; per round "
                  f"{min(ratios):.2f}x to {max(ratios):.2f}x)"
                  + (f", with compile {rows[-1][1] / base:.2f}x" if args.compile else ""))


if __name__ == "__main__":
    main()
