"""`archsearch best`: re-evaluate a study's top trials on the held-out test split over seeds.

For each of the top-K successful trials (by validation metric; the Pareto front first for a
multi-objective study) and each seed:

- `retrain="full"`: re-train the trial's resolved spec on train + val for the number of epochs
  the search selected (the trial's best epoch), with `train.seed` = that seed, and keep the final
  weights — no split is used to pick them;
- `retrain="reuse"`: take the checkpoint the search kept for the trial (one "seed": its own);

then evaluate once on the test split (fp32). `overrides` (`key=value`, as `--set`) change the
re-trained spec after that — e.g. `train.epochs=30` and `data.train_size=null` to train the
finalists of a short, subset-sized search at full length; their results go to their own folder,
studies/<study>/best-<overrides>/. `select=K` first re-trains each of the top trials once in that
setting on the train split alone and keeps the K best by the *validation* metric (a short search's
ranking need not hold at full length; the test split chooses nothing, so with K=1 the winner's test
number is unbiased). Each (trial, mode, seed) result is stored in
studies/<study>/best/results.json with its weights beside it, and a summary in the study's user
attrs (`test:trial_<n>`; Optuna refuses to change a finished trial's attrs), so a repeated call
reuses them unless `redo`. The entries are ranked by the mean test value of the spec's metric
(train.metric: accuracy, balanced_accuracy or macro_f1); the winner is compared
with the runner-up by a paired t-test over the shared seeds.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from archsearch.build import build_model
from archsearch.build.summary import latency
from archsearch.data import prepare_train_val
from archsearch.data.prepare import check_train_val, data_key
from archsearch.data.base import BatchSource
from archsearch.data.testsplit import load_test, test_split_forbidden
from archsearch.errors import ArchsearchError, DataError
from archsearch.evaluate.metrics import classification_metrics
from archsearch.evaluate.stats import PairedTest, Spread, paired_test, spread
from archsearch.fs import ensure_writable_dir, write_json
from archsearch.search.study import OK
from archsearch.spec import parse_spec
from archsearch.spec.io import apply_overrides
from archsearch.spec.root import Spec
from archsearch.train.loop import evaluate_source, fit, seed_everything

RESULTS_FILE = "results.json"
SELECTION_FILE = "selection.json"


@dataclass
class SeedRun:
    """One re-training (or the reused checkpoint) of a trial, evaluated on the test split."""

    seed: int
    accuracy: float
    macro_f1: float
    epochs: int
    seconds: float
    weights: str  # file name in the best/ folder
    test_fingerprint: str
    spec_hash: str
    metrics: dict = field(default_factory=dict)  # classification_metrics on test
    history: list = field(default_factory=list)  # per-epoch records of the re-training
    data_info: dict = field(default_factory=dict)


@dataclass
class Entry:
    """A trial on the leaderboard."""

    trial: int
    spec: dict  # the spec re-trained (first seed); train.epochs = the epochs used
    params: int
    flops: int
    val_metric: float
    latency_ms: float
    runs: list[SeedRun]
    classes: list[str]
    normalization: dict

    @property
    def accuracy(self) -> Spread:
        return spread([r.accuracy for r in self.runs], bounds=(0.0, 1.0))

    @property
    def macro_f1(self) -> float:
        return sum(r.macro_f1 for r in self.runs) / len(self.runs)

    @property
    def metric(self) -> str:
        """The spec's train.metric (accuracy, balanced_accuracy, macro_f1): what the search selected
        on, and so what the leaderboard ranks by on the test split."""
        return str(self.spec.get("train", {}).get("metric", "accuracy"))

    def test_values(self) -> list[float]:
        """The test value of `metric`, per seed run."""
        if self.metric == "accuracy":
            return [r.accuracy for r in self.runs]
        missing = [r.seed for r in self.runs if self.metric not in r.metrics]
        if missing:
            raise ArchsearchError(f"trial #{self.trial}: the stored test results of seed(s) {missing} lack "
                                  f"{self.metric}; run best again with --redo")
        return [float(r.metrics[self.metric]) for r in self.runs]

    @property
    def score(self) -> Spread:
        """Mean, spread and CI of the test `metric` over seeds (the ranking key)."""
        return spread(self.test_values(), bounds=(0.0, 1.0))


def rank_entries(entries: list[Entry]) -> tuple[list[Entry], PairedTest | None]:
    """Best first by the mean test value of the spec's metric (then val metric, then trial number),
    and the one-sided paired t-test of the winner against the runner-up on their shared seeds."""
    ranked = sorted(entries, key=lambda e: (-e.score.mean, -e.val_metric, e.trial))
    if len(ranked) < 2:
        return ranked, None
    a, b = ranked[0], ranked[1]
    shared = sorted({r.seed for r in a.runs} & {r.seed for r in b.runs})
    if not shared:
        return ranked, None

    def on_shared(e: Entry) -> list[float]:
        by_seed = dict(zip((r.seed for r in e.runs), e.test_values()))
        return [by_seed[s] for s in shared]

    return ranked, paired_test(on_shared(a), on_shared(b))


@dataclass
class Candidate:
    """A finalist re-trained once in the `best` setting on the train split, measured on val."""

    trial: int
    seed: int
    val_metric: float
    val_accuracy: float
    epochs: int
    seconds: float
    spec_hash: str
    history: list = field(default_factory=list)


@dataclass
class Selection:
    """`best --select K`: the top trials re-trained on train, ranked on val; the K kept go on to test."""

    metric: str
    candidates: list[Candidate]  # best val first
    kept: list[int]  # trial numbers

    def as_json(self) -> dict:
        return {"metric": self.metric, "kept": self.kept, "split": "val (train split for training)",
                "candidates": [{k: v for k, v in asdict(c).items() if k != "history"} for c in self.candidates]}

    def val_of(self, trial: int) -> float | None:
        """The val metric trial `trial` reached when re-trained for the selection (None: not a candidate)."""
        return next((c.val_metric for c in self.candidates if c.trial == trial), None)

    def describe(self) -> str:
        shown = ", ".join(f"#{c.trial} {c.val_metric:.4f}" for c in self.candidates)
        return (f"selected on val {self.metric} ({shown}): kept " + ", ".join(f"#{t}" for t in self.kept)
                + "; the test split chose nothing")


@dataclass
class Leaderboard:
    study: str
    retrain: str
    seeds: list[int]
    entries: list[Entry]  # best first
    comparison: PairedTest | None  # winner vs runner-up
    folder: Path
    overrides: list[str] = field(default_factory=list)  # `--set` applied to every re-trained spec
    selection: Selection | None = None  # select=K: the finalists ranked on val in the re-training setting
    distinct: bool = False  # one trial per network among the finalists

    def as_json(self) -> dict:
        return {
            "study": self.study, "retrain": self.retrain, "seeds": self.seeds, "overrides": self.overrides,
            "distinct": self.distinct,
            "selection": None if self.selection is None else self.selection.as_json(),
            "entries": [{"trial": e.trial, "params": e.params, "flops": e.flops, "val_metric": e.val_metric,
                         "selection_val": None if self.selection is None else self.selection.val_of(e.trial),
                         "latency_ms": e.latency_ms, "test_accuracy": asdict(e.accuracy), "macro_f1": e.macro_f1,
                         "test_metric": {"name": e.metric, **asdict(e.score)},  # the ranking key
                         "per_seed": [{"seed": r.seed, "accuracy": r.accuracy, "macro_f1": r.macro_f1,
                                       e.metric: v} for r, v in zip(e.runs, e.test_values())]}
                        for e in self.entries],
            "winner_vs_runner_up": None if self.comparison is None else {
                **asdict(self.comparison), "significant": self.comparison.significant,
                "text": self.comparison.describe()},
        }


def top_trials(study: optuna.Study, k: int, distinct: bool = False) -> list[FrozenTrial]:
    """The top-k successful trials by val metric (Pareto-optimal ones first when multi-objective);
    duplicates of an already listed resolved spec are skipped. `distinct`: one trial per network —
    a trial whose `model:` section equals a better one's (the same network, other hyperparameters)
    is skipped too, so near-copies do not fill the finalists' places."""
    ok = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
          if t.user_attrs.get("status") == OK and "val_metric" in t.user_attrs and "duplicate_of" not in t.user_attrs]
    if not ok:
        from archsearch.search.study import counts, describe_counts

        if not study.trials:
            raise ArchsearchError(f"study {study.study_name} has no trials yet; run `archsearch run` first")
        what = describe_counts(counts(study))
        raise ArchsearchError(f"study {study.study_name} has no trial that trained to the end to evaluate "
                              f"({len(study.trials)} trial(s): {what or 'none finished'}); run more trials "
                              "(`archsearch run`), or loosen search.budgets if they are over budget")
    front = {t.number for t in study.best_trials} if len(study.directions) > 1 else set()
    ranked = sorted(ok, key=lambda t: (t.number not in front, -t.user_attrs["val_metric"], t.number))
    if distinct:
        seen: set[str] = set()
        unique = []
        for t in ranked:
            key = _hash(t.user_attrs.get("spec", {}).get("model"))
            if key not in seen:
                seen.add(key)
                unique.append(t)
        ranked = unique
    return ranked[:k]


def retrain_spec(trial: FrozenTrial, seed: int, overrides: Sequence[str] = ()) -> Spec:
    """The trial's resolved spec set up for re-training: the epochs the search selected, no early
    stopping (nothing held out to stop on), the given seed; then `overrides` (`key=value`)."""
    data = json.loads(json.dumps(trial.user_attrs["spec"]))
    train = data.setdefault("train", {})
    epochs = int(trial.user_attrs.get("best_epoch") or train.get("epochs", 1))
    train.update(epochs=max(1, epochs), seed=seed, early_stopping=None)
    data = apply_overrides(data, overrides, source="--set")
    train = data["train"]
    if train.get("warmup_epochs", 0) >= train["epochs"]:
        train["warmup_epochs"] = 0.0
    if train.get("unfreeze") and train["unfreeze"]["after_epochs"] >= train["epochs"]:
        train["unfreeze"] = None
    return parse_spec(data, source=f"trial {trial.number}")


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def check_select(select: int | None, top: int, retrain: str) -> None:
    """`--select K` keeps K of the --top trials, so K < top, and it re-trains: --retrain full."""
    if select is None:
        return
    if retrain != "full":
        raise ArchsearchError("--select re-trains the finalists to rank them on val, so it needs --retrain full")
    if not 1 <= select < top:
        raise ArchsearchError(f"--select keeps some of the --top trials: it must be at least 1 and below --top "
                              f"({top}), but got --select {select}")


def check_overrides(overrides: Sequence[str], retrain: str) -> list[str]:
    """`--set` for `best`: only with --retrain full, and never the seed (--seeds sets it)."""
    overrides = list(overrides)
    if overrides and retrain != "full":
        raise ArchsearchError("--set and --epochs change the re-trained spec, so they need --retrain full "
                              "(--retrain reuse evaluates the search's own checkpoint)")
    for item in overrides:
        if item.partition("=")[0].strip() in ("train.seed", "train"):
            raise ArchsearchError(f"--set {item}: the seeds come from --seeds (the trial's seed, +1, +2, ...)")
    return overrides


def results_folder(study_dir: Path, overrides: Sequence[str]) -> Path:
    """studies/<study>/best, or best-<overrides> for re-trainings changed by `--set`."""
    if not overrides:
        return study_dir / "best"
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "-", "_".join(overrides)).strip("-")
    if len(slug) > 60:
        slug = slug[:48].rstrip("-_") + "-" + _hash(list(overrides))[:8]
    return study_dir / f"best-{slug}"


def _read_runs(path: Path) -> dict[str, dict]:
    """The `runs` of a results file; {} when missing or unreadable (recomputed and rewritten)."""
    try:
        return json.loads(path.read_text())["runs"] if path.exists() else {}
    except (ValueError, KeyError):
        return {}


class _Store:
    """results.json in studies/<study>/best/: one record per (trial, mode, seed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / RESULTS_FILE
        self.runs = _read_runs(self.path)

    @staticmethod
    def key(trial: int, mode: str, seed: int) -> str:
        return f"trial{trial}/{mode}/seed{seed}"

    def get(self, trial: int, mode: str, seed: int, spec_hash: str) -> SeedRun | None:
        rec = self.runs.get(self.key(trial, mode, seed))
        if rec is None or rec.get("spec_hash") != spec_hash or not (self.folder / rec["weights"]).is_file():
            return None
        return SeedRun(**rec)

    def put(self, trial: int, mode: str, run: SeedRun) -> None:
        self.runs[self.key(trial, mode, run.seed)] = asdict(run)
        write_json(self.path, {"runs": self.runs})


class _TestData:
    """Test sources, loaded once per (data section, input shape, normalisation)."""

    def __init__(self, device: torch.device, data_dir: str | None) -> None:
        self.device, self.data_dir = device, data_dir
        self.cache: dict[str, tuple[BatchSource, list[str]]] = {}

    def get(self, spec: Spec, mean, std) -> tuple[BatchSource, list[str]]:
        key = _hash([spec.data.model_dump(mode="json"), list(spec.model.input_shape), list(mean), list(std)])
        if key not in self.cache:
            self.cache[key] = load_test(spec.data, spec.model.input_shape, mean=mean, std=std, device=self.device,
                                        data_dir=self.data_dir)
        return self.cache[key]


def evaluate_model(model: torch.nn.Module, spec: Spec, source: BatchSource, classes: list[str],
                   device: torch.device) -> dict:
    """classification_metrics of `model` on `source` in fp32, plus the test-split fingerprint."""
    ev = evaluate_source(model, source, spec.model.num_classes, spec.train.metric, device)
    out = classification_metrics(source.labels.numpy(), ev.predictions.numpy(), classes)
    out["loss"] = ev.loss
    out["fingerprint"] = source.fingerprint()
    out["predictions"] = ev.predictions.tolist()
    return out


def leaderboard(
    study: optuna.Study, *, study_dir: Path, top: int = 3, seeds: int = 3, retrain: str = "full",
    device: torch.device, data_dir: str | None = None, redo: bool = False, overrides: Sequence[str] = (),
    echo: Callable[[str], None] = print, progress: bool = False, select: int | None = None,
    distinct: bool = False,
) -> Leaderboard:
    """Re-evaluate the top trials (see the module docstring) and rank them by the mean test value of
    the spec's metric (`rank_entries`)."""
    if retrain not in ("full", "reuse"):
        raise ArchsearchError(f"--retrain: expected full or reuse, got {retrain!r}")
    overrides = check_overrides(overrides, retrain)
    check_select(select, top, retrain)
    trials = top_trials(study, top, distinct=distinct)
    checked: set[str] = set()
    for t in trials if overrides else ():  # a bad --set fails here, before hours of training
        spec = retrain_spec(t, 0, overrides)
        key = data_key(spec.data, spec.model.input_shape)
        if key not in checked:  # data sizes the --set asks for: checked before any folder or training
            checked.add(key)
            try:
                check_train_val(spec.data, spec.model.input_shape, data_dir, spec.model.num_classes)
            except DataError as e:
                raise DataError(f"--set {' '.join(overrides)}: trial {t.number}: {e}", e.field) from None
    folder = results_folder(study_dir, overrides)
    ensure_writable_dir(folder, "results of `archsearch best`")
    selection = None
    if select is not None and len(trials) > select:
        selection = select_on_val(trials, select, overrides, folder, device=device, data_dir=data_dir, redo=redo,
                                  echo=echo, progress=progress)
        trials = [next(t for t in trials if t.number == n) for n in selection.kept]
    store = _Store(folder)
    tests = _TestData(device, data_dir)
    entries = []
    for rank, trial in enumerate(trials, 1):
        base_seed = _base_seed(trial)
        seed_list = [base_seed] if retrain == "reuse" else [base_seed + i for i in range(seeds)]
        runs, meta = [], {}
        for i, seed in enumerate(seed_list):
            spec = retrain_spec(trial, seed, overrides) if retrain == "full" else parse_spec(trial.user_attrs["spec"])
            spec_hash = _hash([spec.model_dump(mode="json"), retrain])
            cached = None if redo else store.get(trial.number, retrain, seed, spec_hash)
            label = f"trial #{trial.number} ({rank}/{len(trials)}) seed {seed}"
            if cached is not None:
                echo(f"{label}: test accuracy {cached.accuracy:.4f} (stored)")
                runs.append(cached)
            else:
                echo(f"{label}: " + (f"re-training {spec.train.epochs} epochs on train+val" if retrain == "full"
                                     else "evaluating the search's checkpoint") + " ...")
                run = _run_seed(trial, spec, spec_hash, retrain, study_dir, folder, tests, device, data_dir, progress)
                store.put(trial.number, retrain, run)
                echo(f"{label}: {'re-trained ' + str(run.epochs) + ' epochs on train+val, ' if retrain == 'full' else ''}"
                     f"test accuracy {run.accuracy:.4f}, macro-F1 {run.macro_f1:.4f} ({run.seconds:.1f} s)")
                runs.append(run)
            if i == 0:
                meta = {"spec": spec.model_dump(mode="json")}
        first = runs[0]
        model = build_model(parse_spec(meta["spec"]), pretrained=False)  # counted only
        entries.append(Entry(
            trial=trial.number, spec=meta["spec"], params=int(trial.user_attrs.get("params", 0)),
            flops=int(trial.user_attrs.get("flops", 0)), val_metric=float(trial.user_attrs["val_metric"]),
            latency_ms=latency(model, tuple(meta["spec"]["model"]["input"]), torch.device("cpu"),
                               batch_sizes=(1,))["ms_per_image_batch1"],
            runs=runs, classes=first.data_info.get("classes", []),
            normalization=first.data_info.get("normalization", {}),
        ))
        study.set_user_attr(f"test:trial_{trial.number}" + (f":{folder.name}" if overrides else ""), {
            "retrain": retrain, "overrides": overrides, "seeds": [r.seed for r in runs],
            "accuracy": [r.accuracy for r in runs],
            "macro_f1": [r.macro_f1 for r in runs], "fingerprint": first.test_fingerprint})
    entries, comparison = rank_entries(entries)
    used = sorted({r.seed for e in entries for r in e.runs})
    board = Leaderboard(study.study_name, retrain, used, entries, comparison, folder, overrides, selection, distinct)
    write_json(folder / "leaderboard.json", board.as_json())
    return board


def _base_seed(trial: FrozenTrial) -> int:
    return int(trial.user_attrs["spec"].get("train", {}).get("seed", 0))


def select_on_val(
    trials: Sequence[FrozenTrial], keep: int, overrides: Sequence[str], folder: Path, *, device: torch.device,
    data_dir: str | None = None, redo: bool = False, echo: Callable[[str], None] = print, progress: bool = False,
) -> Selection:
    """Re-train each trial once in the re-training setting (`overrides`, the trial's own seed) on the
    train split, measure its final weights on val, keep the `keep` best. The test split is closed
    throughout; results are stored in `folder`/selection.json and reused unless `redo`."""
    path = folder / SELECTION_FILE
    stored = _read_runs(path)
    candidates = []
    for rank, trial in enumerate(trials, 1):
        seed = _base_seed(trial)
        spec = retrain_spec(trial, seed, overrides)
        spec_hash = _hash([spec.model_dump(mode="json"), "select"])
        key = f"trial{trial.number}/seed{seed}"
        label = f"selection: trial #{trial.number} ({rank}/{len(trials)})"
        rec = None if redo else stored.get(key)
        if rec is not None and rec.get("spec_hash") == spec_hash:
            cand = Candidate(**rec)
            echo(f"{label}: val {spec.train.metric} {cand.val_metric:.4f} (stored)")
        else:
            echo(f"{label}: re-training {spec.train.epochs} epochs on the train split, to rank on val ...")
            t0 = time.perf_counter()
            with test_split_forbidden("the finalists' selection of `archsearch best --select`"):
                seed_everything(seed, spec.train.deterministic)
                data = prepare_train_val(spec.data, spec.model.input_shape,
                                         num_classes=spec.model.num_classes, device=device, data_dir=data_dir)
                result = fit(build_model(spec), data, spec.train, device=device, num_classes=spec.model.num_classes,
                             progress=progress, keep="last")  # the final weights, as the re-training keeps
            last = result.history[-1]
            cand = Candidate(trial=trial.number, seed=seed, val_metric=last.val_metric, val_accuracy=last.val_acc,
                             epochs=len(result.history), seconds=time.perf_counter() - t0, spec_hash=spec_hash,
                             history=result.history_dicts())
            stored[key] = asdict(cand)
            write_json(path, {"runs": stored})
            echo(f"{label}: val {spec.train.metric} {cand.val_metric:.4f} after {cand.epochs} epochs "
                 f"({cand.seconds:.1f} s)")
        candidates.append(cand)
    order = {t.number: i for i, t in enumerate(trials)}  # ties keep the search's order
    candidates.sort(key=lambda c: (-c.val_metric, order[c.trial]))
    selection = Selection(spec.train.metric, candidates, [c.trial for c in candidates[:keep]])
    echo(selection.describe())
    return selection


def _run_seed(trial: FrozenTrial, spec: Spec, spec_hash: str, retrain: str, study_dir: Path, folder: Path,
              tests: _TestData, device: torch.device, data_dir: str | None, progress: bool) -> SeedRun:
    t0 = time.perf_counter()
    seed = spec.train.seed
    weights = f"trial_{trial.number}_{retrain}_seed{seed}.pt"
    if retrain == "reuse":
        ckpt = study_dir / f"trial_{trial.number}.pt"
        if not ckpt.is_file():
            raise ArchsearchError(
                f"--retrain reuse: trial #{trial.number} has no kept checkpoint ({ckpt}); only the top "
                f"search.keep_top_k trials keep one. Use --retrain full")
        data = prepare_train_val(spec.data, spec.model.input_shape,
                                 num_classes=spec.model.num_classes, device=device, data_dir=data_dir)
        model = build_model(spec)
        model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
        model.to(device)
        history: list = trial.user_attrs.get("history", [])
        epochs = int(trial.user_attrs.get("best_epoch", 0))
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    else:
        seed_everything(seed, spec.train.deterministic)
        data = prepare_train_val(spec.data, spec.model.input_shape,
                                 num_classes=spec.model.num_classes, device=device, data_dir=data_dir, merge_val=True)
        model = build_model(spec)
        result = fit(model, data, spec.train, device=device, num_classes=spec.model.num_classes,
                     progress=progress, keep="last")
        history = result.history_dicts()
        epochs = len(result.history)
        state = result.best_state
        model = model.to(memory_format=torch.contiguous_format)
    tmp = folder / (weights + ".tmp")
    torch.save(state, tmp)
    tmp.replace(folder / weights)
    source, classes = tests.get(spec, data.mean, data.std)
    metrics = evaluate_model(model, spec, source, classes, device)
    info = {**data.info, "classes": data.classes, "normalization": {"mean": list(data.mean), "std": list(data.std)}}
    return SeedRun(seed=seed, accuracy=metrics["accuracy"], macro_f1=metrics["macro_f1"], epochs=epochs,
                   seconds=time.perf_counter() - t0, weights=weights, test_fingerprint=metrics["fingerprint"],
                   spec_hash=spec_hash, metrics={k: v for k, v in metrics.items() if k != "predictions"},
                   history=history, data_info=info)
