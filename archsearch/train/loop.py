"""fit(model, data, TrainSpec): the training loop. No Optuna: callers hook in through on_epoch."""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from torchvision.models.resnet import ResNet

from archsearch.build.backbones import set_frozen
from archsearch.data import BatchSource, TrainVal
from archsearch.errors import TrainingError
from archsearch.spec.model import STAGES
from archsearch.spec.train import TrainSpec
from archsearch.train.allocator import tune_cpu_allocator
from archsearch.train.graphed import WARMUP_STEPS, GraphedStep
from archsearch.train.metrics import confusion, metric_from_confusion
from archsearch.train.optim import Schedule, make_optimizer
from archsearch.train.precision import autocast, resolve_precision

EVAL_BATCH = 512
CHECK_EVERY = 25  # batches between loss-finiteness checks (each one is a device sync)


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    val_metric: float
    lr: float
    seconds: float
    img_per_s: float


@dataclass
class FitResult:
    history: list[EpochRecord]
    best_epoch: int
    best_metric: float
    stopped: str  # completed | early_stopping
    precision: str
    device: str
    seconds: float
    best_state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    cuda_graph: bool = False

    def history_dicts(self) -> list[dict]:
        return [asdict(r) for r in self.history]


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, torch (CPU and CUDA); in deterministic mode also force deterministic kernels."""
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    metric: float
    confusion: torch.Tensor
    predictions: torch.Tensor  # CPU int64, in the source's order


@torch.no_grad()
def evaluate_source(
    model: nn.Module, source: BatchSource, num_classes: int, metric: str, device: torch.device,
    precision: str = "fp32", channels_last: bool = False,
) -> Evaluation:
    """Loss, accuracy, the named metric and the confusion matrix of `model` on a source (eval mode)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    preds = []
    for x, y in source.batches(EVAL_BATCH):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(precision, device):
            out = model(x)
        loss_sum += nn.functional.cross_entropy(out.float(), y, reduction="sum")
        preds.append(out.argmax(1))
    model.train(was_training)
    pred = torch.cat(preds).cpu()
    cm = confusion(source.labels, pred, num_classes)
    n = max(1, source.num_samples)
    return Evaluation(float(loss_sum) / n, metric_from_confusion(cm, "accuracy"), metric_from_confusion(cm, metric), cm, pred)


EPOCH_STATE_VERSION = 1


def load_epoch_state(path: Path) -> dict | None:
    """A state written by fit(epoch_checkpoint=...), or None if missing, unreadable or of another version."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("version") == EPOCH_STATE_VERSION else None


def _save_atomic(state: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


class _Progress:
    """A rich progress bar over all batches of the run, plus one line a finished epoch. Where
    stderr is not a terminal (a log file, nohup, CI) only the epoch lines are written, flushed."""

    def __init__(self, enabled: bool, epochs: int, batches: int, val_name: str = "val") -> None:
        self.enabled = enabled
        self.val_name = val_name  # "val (trained on)" where the val split is part of the training data
        self.lines_only = enabled and not sys.stderr.isatty()
        if not enabled or self.lines_only:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}/" + str(epochs)),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  " + val_name + " {task.fields[val]}  {task.fields[speed]} img/s"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task = self.bar.add_task("train", total=epochs * batches, epoch=1, loss="-", val="-", speed="-")
        self.bar.start()

    def update(self, advance: int, **fields: object) -> None:
        if self.enabled and not self.lines_only:
            self.bar.update(self.task, advance=advance, **fields)

    def epoch_line(self, r: EpochRecord, metric: str) -> None:
        if not self.enabled:
            return
        extra = "" if metric == "accuracy" else f" {metric} {r.val_metric:.4f}"  # accuracy is already there
        line = (f"epoch {r.epoch}: train loss {r.train_loss:.4f} acc {r.train_acc:.4f} | {self.val_name} loss {r.val_loss:.4f} "
                f"acc {r.val_acc:.4f}{extra} | lr {r.lr:.2e} | {r.seconds:.1f}s {r.img_per_s:,.0f} img/s")
        if self.lines_only:
            print(line, file=sys.stderr, flush=True)
        else:
            self.bar.console.print(line)

    def close(self) -> None:
        if self.enabled and not self.lines_only:
            self.bar.stop()


def fit(
    model: nn.Module,
    data: TrainVal,
    spec: TrainSpec,
    *,
    device: torch.device | str = "cpu",
    num_classes: int | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    checkpoint: Path | None = None,
    progress: bool = False,
    keep: str = "best",
    epoch_checkpoint: Path | None = None,
    resume_from: dict | None = None,
) -> FitResult:
    """Train `model` on data.train, validate on data.val after every epoch, keep the best weights.

    The best state (by the val metric) is restored into `model` at the end and, when `checkpoint`
    is given, written there (atomically) whenever it improves. `on_epoch` is called with each
    epoch's record and may raise to stop (e.g. Optuna pruning). `keep="last"` keeps the final
    weights instead (training on train + val, where the val metric is not held out).

    `epoch_checkpoint`: after every epoch, the whole training state (weights, optimizer, schedule,
    RNG states, history, best so far) is written there atomically; `resume_from` (such a state,
    loaded with `load_epoch_state`) continues training after its epoch, as if never stopped. A non-finite loss raises
    TrainingError(reason='nan_loss'); the checkpoint then still holds the last good weights.
    """
    if keep not in ("best", "last"):
        raise ValueError(f"keep must be 'best' or 'last', but got {keep=}")
    device = torch.device(device)
    num_classes = num_classes or len(data.classes)
    precision = resolve_precision(spec.precision, device)
    if device.type == "cpu":
        tune_cpu_allocator()  # per-step activations reuse their pages instead of re-faulting them
    model.to(device)
    if spec.channels_last:
        model.to(memory_format=torch.channels_last)
    # On CUDA, compile with CUDA graphs: small models are bound by kernel-launch overhead.
    step_model = torch.compile(model, mode="reduce-overhead" if device.type == "cuda" else None) if spec.compile else model
    use_graph = (spec.cuda_graph and device.type == "cuda" and precision != "fp16" and spec.unfreeze is None
                 and spec.optimizer.name in ("adam", "adamw") and not spec.compile
                 and data.train.num_samples >= spec.batch_size * (WARMUP_STEPS + 1))
    optimizer = make_optimizer(model, spec, capturable=use_graph)
    n_batches = data.train.num_batches(spec.batch_size)
    schedule = Schedule(optimizer, spec, n_batches)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16" and device.type == "cuda")
    loss_fn = nn.CrossEntropyLoss(label_smoothing=spec.label_smoothing)
    generator = torch.Generator().manual_seed(spec.seed)
    higher_better = spec.early_stopping is None or spec.early_stopping.metric == "val_metric"

    history: list[EpochRecord] = []
    best_metric, best_epoch, best_stop_value, stale = -math.inf, 0, None, 0
    best_state: dict[str, torch.Tensor] = {}
    stopped = "completed"
    step, first_epoch = 0, 1
    if resume_from is not None:
        r = resume_from
        model.load_state_dict(r["model"])
        optimizer.load_state_dict(r["optimizer"])
        schedule.load_state_dict(r["schedule"])
        generator.set_state(r["generator"])
        torch.set_rng_state(r["torch_rng"])
        if device.type == "cuda" and r.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(r["cuda_rng"], device)
        history = [EpochRecord(**h) for h in r["history"]]
        best_metric, best_epoch, best_stop_value, stale = r["best_metric"], r["best_epoch"], r["best_stop_value"], r["stale"]
        best_state, step, first_epoch = r["best_state"], r["step"], r["epoch"] + 1
        if spec.unfreeze is not None and r["epoch"] > spec.unfreeze.after_epochs and isinstance(model, ResNet):
            set_frozen(model, list(spec.unfreeze.stages or STAGES), frozen=False)
    graphed = GraphedStep(model, optimizer, loss_fn, precision, device, spec.grad_clip) if use_graph else None
    bar = _Progress(progress, spec.epochs, n_batches,
                    val_name="val (trained on)" if data.info.get("merged_val") else "val")
    t_start = time.perf_counter()
    try:
        for epoch in range(first_epoch, spec.epochs + 1):
            if spec.unfreeze is not None and epoch == spec.unfreeze.after_epochs + 1 and isinstance(model, ResNet):
                set_frozen(model, list(spec.unfreeze.stages or STAGES), frozen=False)
            model.train()
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            if graphed is not None:
                graphed.reset_totals()
            for i, (x, y) in enumerate(data.train.batches(spec.batch_size, shuffle=True, augment=True, generator=generator)):
                if graphed is not None and y.shape[0] != spec.batch_size:
                    continue  # a graph replays one batch shape: the last partial batch is skipped
                schedule.step(step)
                step += 1
                if spec.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                if graphed is not None:
                    graphed(x, y)
                else:
                    with autocast(precision, device):
                        out = step_model(x)
                    loss = loss_fn(out.float(), y)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    if spec.grad_clip is not None:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    loss_sum += loss.detach() * y.shape[0]
                    correct += (out.detach().argmax(1) == y).sum()
                seen += y.shape[0]
                if (i + 1) % CHECK_EVERY == 0 or i + 1 == n_batches:
                    running = float(graphed.loss_sum if graphed is not None else loss_sum) / max(1, seen)
                    if not math.isfinite(running):
                        raise TrainingError(
                            f"the loss became {running} at epoch {epoch}, batch {i + 1} (lr {schedule.lr:.2e}); "
                            + (f"the last good checkpoint (epoch {best_epoch}) is kept at {checkpoint}"
                               if checkpoint and best_epoch else "no epoch finished, so there is no checkpoint")
                            + ". Lower train.lr, add train.grad_clip or use precision: fp32.",
                            reason="nan_loss",
                        )
                    bar.update(CHECK_EVERY if (i + 1) % CHECK_EVERY == 0 else (i + 1) % CHECK_EVERY,
                               epoch=epoch, loss=f"{running:.4f}", speed=f"{seen / (time.perf_counter() - t0):,.0f}")
            if graphed is not None:
                loss_sum, correct = graphed.loss_sum, graphed.correct
            train_seconds = time.perf_counter() - t0
            ev = evaluate_source(model, data.val, num_classes, spec.metric, device, precision, spec.channels_last)
            record = EpochRecord(
                epoch=epoch, train_loss=float(loss_sum) / max(1, seen), train_acc=float(correct) / max(1, seen),
                val_loss=ev.loss, val_acc=ev.accuracy, val_metric=ev.metric, lr=schedule.lr,
                seconds=time.perf_counter() - t0, img_per_s=seen / max(train_seconds, 1e-9),
            )
            history.append(record)
            schedule.epoch_end(ev.metric)
            bar.update(0, val=f"{ev.metric:.4f}")
            bar.epoch_line(record, spec.metric)
            if ev.metric > best_metric:
                best_metric, best_epoch = ev.metric, epoch
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                if checkpoint is not None:
                    _save_atomic(best_state, checkpoint)
            stop = False
            if spec.early_stopping is not None:
                value = ev.metric if higher_better else -ev.loss
                if best_stop_value is None or value > best_stop_value + 1e-6:
                    best_stop_value, stale = value, 0
                else:
                    stale += 1
                    stop = stale >= spec.early_stopping.patience
            if epoch_checkpoint is not None:
                _save_atomic({
                    "version": EPOCH_STATE_VERSION, "epoch": epoch, "step": step,
                    "model": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
                    "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                    "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    "history": [asdict(h) for h in history], "best_metric": best_metric, "best_epoch": best_epoch,
                    "best_state": best_state, "best_stop_value": best_stop_value, "stale": stale,
                }, epoch_checkpoint)
            if on_epoch is not None:
                on_epoch(record)
            if stop:
                stopped = "early_stopping"
                break
    finally:
        bar.close()
    if keep == "last" and history:
        best_epoch, best_metric = len(history), history[-1].val_metric
        best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if checkpoint is not None:
            _save_atomic(best_state, checkpoint)
    if best_state:
        model.load_state_dict(best_state)
    return FitResult(history, best_epoch, best_metric, stopped, precision, str(device),
                     time.perf_counter() - t_start, best_state, cuda_graph=graphed is not None)
