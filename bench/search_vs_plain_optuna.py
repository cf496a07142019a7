"""archsearch vs a plain Optuna objective on the MLP space of Optuna's PyTorch example.

Plain side: the objective written the way Optuna's example (examples/pytorch/pytorch_simple.py)
writes it — define_model(trial), new torchvision FashionMNIST DataLoaders every trial (ToTensor),
30 training batches of 128 per epoch, 10 epochs, accuracy on 10 batches of 128 reported every epoch.
Unlike the example it validates on the same 1,280 images carved from the train split that
archsearch validates on (the example validates on the test split), so the accuracies compare.
archsearch side: `spaces/optuna_mlp.yaml` through archsearch.search.run_search.
Both: the same TPE sampler settings and median pruner, the same wall-clock budget, one process.

    python bench/search_vs_plain_optuna.py --seconds 120
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import optuna
import torch
import torch.nn as nn
import torch.nn.functional as F

from archsearch.data.prepare import split_indices, train_pool
from archsearch.search import run_search
from archsearch.search.study import make_pruner, make_sampler
from archsearch.spec.search import SearchSpec
from archsearch.spec.space import load_space
from fmnist_files import torchvision_root

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "spaces" / "optuna_mlp.yaml"
BATCHSIZE, EPOCHS, N_TRAIN_EXAMPLES, N_VALID_EXAMPLES = 128, 10, 128 * 30, 128 * 10


def val_indices(space) -> list[int]:
    """The indices (into torchvision's FashionMNIST train set) of archsearch's validation images."""
    from archsearch.spec.io import parse_spec
    from archsearch.spec.space import resolve

    spec = parse_spec(resolve(space.data, lambda d: d.choices[0] if d.kind == "choice" else d.low))
    pool = train_pool(spec.data)
    # the pool is the whole train split in file order, so positions are torchvision indices
    _, val = split_indices(pool, spec.data)
    return [int(i) for i in val]


def plain_objective(root: Path, valid_idx: list[int]):
    import torchvision
    from torchvision import transforms

    def define_model(trial):
        n_layers = trial.suggest_int("n_layers", 1, 3)
        layers, in_features = [], 28 * 28
        for i in range(n_layers):
            out_features = trial.suggest_int(f"n_units_l{i}", 4, 128)
            layers += [nn.Linear(in_features, out_features), nn.ReLU()]
            layers.append(nn.Dropout(trial.suggest_float(f"dropout_l{i}", 0.2, 0.5)))
            in_features = out_features
        layers += [nn.Linear(in_features, 10), nn.LogSoftmax(dim=1)]
        return nn.Sequential(*layers)

    def objective(trial):
        model = define_model(trial)
        name = trial.suggest_categorical("optimizer", ["Adam", "RMSprop", "SGD"])
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        optimizer = getattr(torch.optim, name)(model.parameters(), lr=lr)
        train_ds = torchvision.datasets.FashionMNIST(str(root), train=True, transform=transforms.ToTensor())
        train_loader = torch.utils.data.DataLoader(train_ds, batch_size=BATCHSIZE, shuffle=True)
        valid_loader = torch.utils.data.DataLoader(torch.utils.data.Subset(train_ds, valid_idx),
                                                   batch_size=BATCHSIZE, shuffle=True)
        for epoch in range(EPOCHS):
            model.train()
            for batch_idx, (data, target) in enumerate(train_loader):
                if batch_idx * BATCHSIZE >= N_TRAIN_EXAMPLES:
                    break
                optimizer.zero_grad()
                F.nll_loss(model(data.view(data.size(0), -1)), target).backward()
                optimizer.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for batch_idx, (data, target) in enumerate(valid_loader):
                    if batch_idx * BATCHSIZE >= N_VALID_EXAMPLES:
                        break
                    correct += model(data.view(data.size(0), -1)).argmax(1).eq(target).sum().item()
            accuracy = correct / min(len(valid_loader.dataset), N_VALID_EXAMPLES)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.exceptions.TrialPruned()
        return accuracy

    return objective


def finished(study) -> int:
    return sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in study.trials)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0, help="wall-clock budget of each side")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(SPACE)
    search = SearchSpec.model_validate(space.section("search"))
    valid_idx = val_indices(space)
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(Path(tmp) / "tv")
        torch.manual_seed(0)
        plain = optuna.create_study(direction="maximize", sampler=make_sampler(search.sampler, space, False),
                                    pruner=make_pruner(search.pruner))
        t0 = time.perf_counter()
        plain.optimize(plain_objective(root, valid_idx), timeout=args.seconds)
        plain_s = time.perf_counter() - t0
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            t0 = time.perf_counter()
            ours = run_search(space, search, study_name="bench", storage=f"sqlite:///{tmp}/bench.db",
                              trials=10_000, timeout=args.seconds, echo=lambda s: None).study
            ours_s = time.perf_counter() - t0
        finally:
            os.chdir(cwd)
        o_best = max(t.user_attrs["val_metric"] for t in ours.trials if t.user_attrs.get("status") == "ok")
        o_finished = finished(ours)  # (read before the temporary storage goes)
    p_best = plain.best_value
    print(f"budget {args.seconds:.0f} s per side, CPU threads {torch.get_num_threads()}")
    print(f"plain Optuna (example's objective) {finished(plain):4d} trials finished in {plain_s:6.1f} s, best val acc {p_best:.4f}")
    print(f"archsearch run                     {o_finished:4d} trials finished in {ours_s:6.1f} s, best val acc {o_best:.4f}")
    print(f"RATIO trials archsearch / plain = {o_finished / max(1, finished(plain)):.2f}x; "
          f"best accuracy difference {o_best - p_best:+.4f}")


if __name__ == "__main__":
    main()
