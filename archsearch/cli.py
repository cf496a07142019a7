"""The `archsearch` command: thin typer commands over the modules of the package.

Heavy modules (torch, optuna) are imported inside the commands so `archsearch --help` stays fast.
Every ArchsearchError becomes one message on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="archsearch",
    help="Declarative architecture search for PyTorch: YAML specs → models → Optuna studies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="override a spec field: --set train.lr=0.01 (repeatable)"),
]


def _err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def _human(n: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}P"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@app.command()
def validate(
    specs: Annotated[list[Path], typer.Argument(help="spec files to check")],
    set_: SetOpt = None,
) -> None:
    """Check specs and spaces: schema, shapes, files; a space at its extremes and every choice.
    Exit 0, or 2 listing every error."""
    from archsearch.errors import SpecError
    from archsearch.spec.space import check_space, load_space

    failed = 0
    for path in specs:
        try:
            space = load_space(path, set_ or [])
            checked, problems = check_space(space)
            if problems:
                raise SpecError(problems, str(path))
            spec = space.resolve(lambda d: d.choices[0] if d.kind == "choice" else d.low)
        except SpecError as e:
            failed += 1
            _err(str(e))
            continue
        kind = spec.model.backbone.name if spec.model.backbone else f"{len(spec.model.layers or [])} layers"
        n = len({d.name for d in space.dims})
        extra = f", search space: {n} parameters, {checked} extreme specs valid" if space.dims else ""
        typer.echo(f"ok: {path} ({kind}, {spec.data.dataset}{extra})")
        b = spec.search.budgets
        if space.dims and (b.max_params or b.max_flops or b.gpu_memory):  # builds models: only then
            from archsearch.search.budget import over_budget_everywhere

            if warning := over_budget_everywhere(space):
                typer.echo(f"  warning: {warning}", err=True)
        folder = spec.data.path if spec.data.dataset == "image_folder" else None
        if folder and not Path(folder).expanduser().is_dir():  # a data location, not a spec error: a note
            typer.echo(f"  note: data.path {folder} is not a folder here; train and run need it "
                       "(--set data.path=DIR)", err=True)
    if failed:
        raise typer.Exit(2)


@app.command()
def summary(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="spec file")],
    batch_size: Annotated[Optional[int], typer.Option(
        min=1, help="batch for the memory estimate (default: train.batch_size)")] = None,
    set_: SetOpt = None,
) -> None:
    """Per layer: output shape and parameters; totals: params, FLOPs, a training-memory estimate."""
    from rich.console import Console
    from rich.table import Table

    from archsearch.build import build_model, summarize
    from archsearch.spec import load_spec
    from archsearch.spec.base import fmt_shape

    spec = load_spec(spec_path, set_ or [])
    bb = spec.model.backbone
    imagenet = bb is not None and bb.pretrained == "imagenet"
    if imagenet:  # shapes and counts need no download (offline too)
        spec = spec.model_copy(update={"model": spec.model.model_copy(
            update={"backbone": bb.model_copy(update={"pretrained": "none"})})})
    model = build_model(spec)
    s = summarize(model, spec.model.input_shape)
    table = Table(title=f"{spec_path}  input {fmt_shape(s.input_shape)}"
                  + ("  (ImageNet weights not loaded)" if imagenet else ""))
    for col in ("#", "layer", "output shape", "params", "trainable"):
        table.add_column(col, justify="right" if col in ("#", "params", "trainable") else "left")
    for row in s.rows:
        table.add_row(row.name, row.kind, fmt_shape(row.output_shape), f"{row.params:,}", f"{row.trainable:,}")
    console = Console()
    console.print(table)
    bs = batch_size or spec.train.batch_size
    mem = s.memory_bytes(bs, optimizer_slots=2 if spec.train.optimizer.name in ("adam", "adamw") else 1)
    console.print(
        f"params {s.params:,}  trainable {s.trainable_params:,}  non-trainable {s.params - s.trainable_params:,}"
        f"  buffers {s.buffers:,}\n"
        f"FLOPs/image {_human(s.flops)} (forward, multiply-add = 2)\n"
        f"training memory at batch {bs} ≈ {_bytes(mem['total'])} "
        f"(weights {_bytes(mem['weights'])}, gradients {_bytes(mem['gradients'])}, "
        f"optimizer {_bytes(mem['optimizer'])}, activations {_bytes(mem['activations'])}, "
        f"backward buffers {_bytes(mem['transient'])})"
    )


@app.command()
def schema(
    space: Annotated[bool, typer.Option("--space", help="the schema of spaces: any value outside `search:` "
                                        "may be a search dimension ({choice: ...}, {int: ...}, {float: ...})")] = False,
    out: Annotated[Optional[Path], typer.Option(help="write to this file instead of stdout")] = None,
) -> None:
    """Print the JSON Schema of spec files, or with --space of space files (for editor completion and
    checking, e.g. yaml-language-server)."""
    from archsearch.spec.schema import spec_schema

    text = json.dumps(spec_schema(space=space), indent=2)
    if out is None:
        typer.echo(text)
    else:
        from archsearch.fs import ensure_writable_file

        ensure_writable_file(out, "--out")
        out.write_text(text + "\n")
        typer.echo(f"wrote {out}")


DeviceOpt = Annotated[Optional[str], typer.Option(help="cpu | cuda | cuda:N | auto (default: cuda when available)")]
DataDirOpt = Annotated[
    Optional[Path], typer.Option("--data-dir", exists=True, file_okay=False,
                                 help="dataset folder (else $ARCHSEARCH_DATA, system packages, cache)")
]


@app.command()
def train(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="a concrete spec file")],
    epochs: Annotated[Optional[int], typer.Option(min=1, help="override train.epochs")] = None,
    set_: SetOpt = None,
    device: DeviceOpt = None,
    out: Annotated[Optional[Path], typer.Option(help="run directory (default runs/<name>-<time>)")] = None,
    data_dir: DataDirOpt = None,
    force: Annotated[bool, typer.Option(help="write into a non-empty --out")] = False,
    progress: Annotated[bool, typer.Option(help="live progress bar")] = True,
) -> None:
    """Train one spec (train/val splits only) and write a run directory with the best checkpoint."""
    import time

    from archsearch.spec import load_spec

    overrides = list(set_ or [])
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    spec = load_spec(spec_path, overrides)
    from archsearch.train.run import train_run

    name = spec.name or spec_path.stem
    out = out or Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = train_run(spec, out, device=device, data_dir=str(data_dir) if data_dir else None,
                       progress=progress, force=force)
    m = result.metrics
    typer.echo(
        f"best epoch {m['best_epoch']}/{m['epochs_run']}: val {m['val']['metric']} {m['val']['value']:.4f} "
        f"(accuracy {m['val']['accuracy']:.4f}) | {m['params']:,} params | {m['seconds_per_epoch']:.1f} s/epoch, "
        f"{m['train_img_per_s']:,.0f} img/s on {m['device']} ({m['precision']})\nrun: {out}"
    )


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a run directory written by `archsearch train`")],
    split: Annotated[str, typer.Option(help="val | test — the test split is read only here")] = "test",
    device: DeviceOpt = None,
    data_dir: DataDirOpt = None,
    ensemble: Annotated[Optional[list[Path]], typer.Option(
        "--ensemble", "-e", metavar="RUN",
        help="another run or export dir (repeatable): average the softmax probabilities of RUN_DIR and every "
             "--ensemble RUN; prints each member's accuracy, the ensemble's and its gain over each member",
    )] = None,
) -> None:
    """Measure a run's best model on the held-out test split (or val): metrics, confusion, latency.

    With --ensemble B [--ensemble C ...]: the ensemble of RUN_DIR, B, C (mean of their softmax
    probabilities), written to RUN_DIR/ensemble_<split>.json."""
    from rich.console import Console
    from rich.table import Table

    from archsearch.evaluate import evaluate_run

    if ensemble:
        _evaluate_ensemble([run_dir, *ensemble], split, device, data_dir)
        return
    r = evaluate_run(run_dir, split, device=device, data_dir=str(data_dir) if data_dir else None)
    console = Console()
    table = Table(title=f"{run_dir} — {split} split ({r['n']} images)")
    for col in ("class", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, c in r["per_class"].items():
        table.add_row(name, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"]))
    console.print(table)
    lat = r["latency"]
    console.print(
        f"accuracy {r['accuracy']:.4f}  balanced {r['balanced_accuracy']:.4f}  "
        f"macro P/R/F1 {r['macro']['precision']:.4f}/{r['macro']['recall']:.4f}/{r['macro']['f1']:.4f}  "
        f"weighted F1 {r['weighted']['f1']:.4f}\n"
        f"latency {lat['ms_per_image_batch1']:.2f} ms/image at batch 1, {lat['ms_per_image_batch256']:.3f} ms/image at "
        f"batch 256 ({lat['img_per_s_batch256']:,.0f} img/s) on {r['device']}\n"
        f"written to {run_dir / f'eval_{split}.json'} ({split}-split fingerprint {r['fingerprint'][:12]})"
    )


def _evaluate_ensemble(runs: list[Path], split: str, device: str | None, data_dir: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from archsearch.evaluate.ensemble import evaluate_ensemble
    from archsearch.fs import write_json

    e = evaluate_ensemble(runs, split, device=device, data_dir=str(data_dir) if data_dir else None)
    report = e.report()
    table = Table(title=f"ensemble of {len(runs)} runs — {split} split ({report['n']} images)")
    for col in ("member", "accuracy", "ensemble gain"):
        table.add_column(col, justify="left" if col == "member" else "right")
    for m in report["members"]:
        table.add_row(m["run"], f"{m['accuracy']:.4f}", f"{m['gain']:+.4f}")
    table.add_row("ensemble (mean of softmax)", f"{e.accuracy:.4f}", "")
    console = Console()
    console.print(table)
    ens = report["ensemble"]
    path = runs[0] / f"ensemble_{split}.json"
    write_json(path, report)
    console.print(
        f"ensemble accuracy {e.accuracy:.4f} ({ens['best_member_gain']:+.4f} over the best member)  balanced "
        f"{ens['balanced_accuracy']:.4f}  macro F1 {ens['macro']['f1']:.4f}\nwritten to {path} "
        f"({split}-split fingerprint {e.fingerprint[:12]})"
    )


@app.command()
def explain(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_OR_EXPORT_DIR", help="a run directory or export bundle")],
    out: Annotated[Optional[Path], typer.Option(help="folder for the figures (default RUN_DIR/explain)")] = None,
    images: Annotated[int, typer.Option(min=1, help="Grad-CAM images per panel (correct / wrong) and per gallery pair")] = 8,
    per_class: Annotated[int, typer.Option(min=1, help="test images per class for the correlation matrix and 2-D maps")] = 100,
    layer: Annotated[Optional[str], typer.Option(help="Grad-CAM target module, e.g. layer4 or 4 (default: the last conv layer)")] = None,
    index: Annotated[int, typer.Option(min=0, help="test image whose feature maps are drawn")] = 0,
    only: Annotated[Optional[list[str]], typer.Option(
        help="draw only this figure (repeatable): gradcam, filters, feature-maps, correlation, gallery, embedding")] = None,
    device: DeviceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Figures that explain a trained model on the test split: Grad-CAM (correct beside wrong), first-layer
    filters, every conv layer's feature maps, class-correlation matrix, misclassification gallery, PCA and
    t-SNE maps of the penultimate features. PNGs + index.html + explain.json."""
    from archsearch.report.explain import explain_run

    result = explain_run(run_dir, out, images=images, per_class=per_class, layer=layer, index=index, figures=only,
                         device=device, data_dir=str(data_dir) if data_dir else None, echo=typer.echo,
                         progress=sys.stderr.isatty())
    n = len(result.figures)
    typer.echo(f"{n} figure{'s' if n != 1 else ''} in {result.out} (open {result.out / 'index.html'})")


StudyOpt = Annotated[Optional[str], typer.Option(help="study name (default: search.study, the spec's name or file stem)")]
StorageOpt = Annotated[Optional[str], typer.Option(help="Optuna storage URL (default sqlite:///studies/<study>.db)")]


@app.command()
def sample(
    space_path: Annotated[Path, typer.Argument(metavar="SPACE", help="a spec with search dimensions")],
    n: Annotated[int, typer.Option("--n", min=1, help="how many specs")] = 5,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    set_: SetOpt = None,
) -> None:
    """Print N resolved, valid specs drawn at random from a space (what the space holds)."""
    import yaml

    from archsearch.search.resolve import sample_specs
    from archsearch.spec.space import load_space

    space = load_space(space_path, set_ or [])
    for i, spec in enumerate(sample_specs(space, n, seed)):  # documents separated by ---: one alone is a spec file
        data = spec.model_dump(mode="json", exclude_defaults=True)
        typer.echo(("---\n" if i else "") + f"# sample {i + 1}/{n}\n" + yaml.safe_dump(data, sort_keys=False).rstrip())


def _search_section(space):
    from pydantic import ValidationError

    from archsearch.errors import SpecError
    from archsearch.spec.io import validation_problems
    from archsearch.spec.search import SearchSpec

    try:
        return SearchSpec.model_validate(space.section("search"))
    except ValidationError as e:
        raise SpecError(validation_problems(e, space.data, dict(space.lines), ("search",)), space.source) from None


def _search_summary(result, quiet: bool = False) -> None:
    from archsearch.search.study import best_ok_trials

    best = best_ok_trials(result.study, 1)
    summary = f"best trial #{best[0].number}: val {best[0].user_attrs['val_metric']:.4f}, " \
              f"{best[0].user_attrs['params']:,} params" if best else "no completed trial yet"
    if not quiet:
        typer.echo(f"{result.finished} finished trial(s) ({result.stopped}); {summary}")
    if result.stopped == "interrupted":
        raise typer.Exit(130)


@app.command()
def run(
    space_path: Annotated[Path, typer.Argument(metavar="SPACE", help="a spec with search dimensions")],
    trials: Annotated[Optional[int], typer.Option(min=1, help="finished trials wanted for the whole study")] = None,
    timeout: Annotated[Optional[float], typer.Option(min=1, help="seconds before no new trial starts")] = None,
    storage: StorageOpt = None,
    study: StudyOpt = None,
    device: DeviceOpt = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes on this machine sharing the study")] = 1,
    set_: SetOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Search a space with Optuna: create or resume the study, train trials until N have finished."""
    from archsearch.spec.space import load_space

    space = load_space(space_path, set_ or [])  # a bad spec fails here, before torch and optuna load
    search = _search_section(space)
    from archsearch.search import run_search

    name = study or search.study or space.name or space_path.stem
    if workers > 1:
        from archsearch.search.run import SearchResult, prepare_study, search_header
        from archsearch.search.study import finished_count
        from archsearch.search.workers import run_workers

        from archsearch.search.storage import release

        st, url, checked = prepare_study(space, search, name, storage, str(data_dir) if data_dir else None)
        release(st._storage)  # the workers hold the connections
        typer.echo(f"{search_header(name, url, finished_count(st), trials or search.trials, space, checked)}; "
                   f"{workers} workers")
        from archsearch.search.budget import over_budget_everywhere

        if warning := over_budget_everywhere(space):
            typer.echo(f"warning: {warning}")
        code = run_workers(workers=workers, study=name, storage=url, trials=trials or search.trials,
                           timeout=timeout, device=device, data_dir=str(data_dir) if data_dir else None, echo=typer.echo)
        from archsearch.search.study import open_study

        st = open_study(name, url, create=False)
        done = finished_count(st)
        target = trials or search.trials
        stopped = ("interrupted" if code in (130, -2) else "trials" if done >= target
                   else "timeout" if code == 0 else f"a worker exited with {code}")
        _search_summary(SearchResult(st, done, stopped))
        if code not in (0, 130, -2):
            raise typer.Exit(code if code > 0 else 1)
        return
    from archsearch.search.isolation import claim

    claim()  # before any torch work: trials may run in forked processes (search.isolate)
    result = run_search(space, search, study_name=name, storage=storage, trials=trials, timeout=timeout,
                        device=device, data_dir=str(data_dir) if data_dir else None, echo=typer.echo,
                        progress=sys.stderr.isatty())
    _search_summary(result)


@app.command()
def worker(
    study: Annotated[str, typer.Option(help="the study to join")],
    storage: Annotated[str, typer.Option(help="its Optuna storage URL (e.g. postgresql://user@host/db)")],
    trials: Annotated[Optional[int], typer.Option(min=1, help="finished trials wanted for the whole study")] = None,
    timeout: Annotated[Optional[float], typer.Option(min=1, help="seconds before no new trial starts")] = None,
    device: DeviceOpt = None,
    data_dir: DataDirOpt = None,
    name: Annotated[Optional[str], typer.Option(help="a label for this worker's lines")] = None,
    summary: Annotated[bool, typer.Option(hidden=True, help="the closing line (`run --workers` prints one for all)")] = True,
) -> None:
    """Join a study from anywhere: its space is read from the study; runs trials until N have finished study-wide."""
    import os

    from archsearch.search import open_study, run_search
    from archsearch.search.storage import release
    from archsearch.search.study import space_from_study

    from archsearch.search.isolation import claim

    threads = os.environ.get("ARCHSEARCH_THREADS")
    claim(int(threads) if threads else None)  # before any torch work: trials may run in forked processes
    joined = open_study(study, storage, create=False)
    space = space_from_study(joined)
    release(joined._storage)
    result = run_search(space, _search_section(space), study_name=study, storage=storage, trials=trials,
                        timeout=timeout, device=device, data_dir=str(data_dir) if data_dir else None,
                        echo=typer.echo, progress=False, worker=name)
    _search_summary(result, quiet=not summary)


def _open_study_for(study: str | None, storage: str | None):
    """The named study (or the only one) in a storage (default: studies/<study>.db or studies/*.db)."""
    from archsearch.errors import ArchsearchError
    from archsearch.search.storage import resolve_storage
    from archsearch.search.study import check_study_dir, open_study, study_summaries

    url = resolve_storage(study, storage, existing=True)
    if study is None:
        names = [s.study_name for s in study_summaries(url)]
        if len(names) != 1:
            raise ArchsearchError(f"give --study NAME: {url} holds {len(names)} studies ({', '.join(names) or 'none'})")
        study = names[0]
    st = open_study(study, url, create=False)
    check_study_dir(study, url, st)  # studies/<name>/ may hold another storage's study of the same name
    return st, url


@app.command()
def best(
    study: Annotated[Optional[str], typer.Option(help="study to re-evaluate (default: the storage's only study)")] = None,
    storage: StorageOpt = None,
    top: Annotated[int, typer.Option(min=1, help="how many of the best trials (by val metric) to re-evaluate")] = 3,
    seeds: Annotated[Optional[int], typer.Option(min=1, help="re-trainings per trial (--retrain full; default 3)")] = None,
    retrain: Annotated[str, typer.Option(help="full: re-train on train+val per seed | reuse: the search's checkpoint")] = "full",
    export: Annotated[Optional[Path], typer.Option(help="write the winner's bundle to this new folder")] = None,
    force: Annotated[bool, typer.Option(help="replace an existing --export folder")] = False,
    redo: Annotated[bool, typer.Option(help="re-train and re-evaluate even where results are stored")] = False,
    epochs: Annotated[Optional[int], typer.Option(
        min=1, help="re-train for this many epochs (default: each trial's best epoch in the search)")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", "-s", help="change the re-trained spec: --set data.train_size=null (repeatable; --retrain full)")] = None,
    select: Annotated[Optional[int], typer.Option(
        help="re-train each of the --top trials once in the re-training setting on the train split and keep "
             "this many, by val metric, for the test (the test split chooses nothing)")] = None,
    distinct: Annotated[bool, typer.Option(
        help="one trial per network: skip trials whose model section equals a better trial's "
             "(the same network with other training hyperparameters)")] = False,
    device: DeviceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Re-evaluate the top trials on the held-out test split over seeds; leaderboard; --export the winner."""
    from archsearch.errors import ArchsearchError

    if retrain not in ("full", "reuse"):
        raise ArchsearchError(f"--retrain: expected full or reuse, got {retrain!r}")
    if retrain == "reuse" and seeds not in (None, 1):
        raise ArchsearchError(f"--seeds {seeds} re-trains each trial {seeds} times, so it needs --retrain full "
                              "(--retrain reuse evaluates the search's one checkpoint)")
    seeds = seeds or 3
    overrides = list(set_ or []) + ([f"train.epochs={epochs}"] if epochs is not None else [])
    st, url = _open_study_for(study, storage)  # a missing study is named before the trainer loads (seconds)
    from archsearch.evaluate.best import check_overrides, check_select

    check_overrides(overrides, retrain)
    check_select(select, top, retrain)
    if export is not None:
        from archsearch.export.bundle import check_target

        check_target(export, force)  # before hours of re-training
    from rich.console import Console
    from rich.table import Table

    from archsearch.evaluate.best import leaderboard
    from archsearch.search.study import STUDIES_DIR
    from archsearch.train.precision import resolve_device

    typer.echo(f"study {st.study_name} on {url}: re-evaluating the top {top} "
               + ("distinct network(s)" if distinct else "trial(s)")
               + (f", the {select} best on val after re-training on train" if select else "") + ", "
               f"{'1 checkpoint each' if retrain == 'reuse' else f'{seeds} seed(s) each on train+val'}"
               + (f", with {' '.join(overrides)}" if overrides else ""))
    board = leaderboard(st, study_dir=STUDIES_DIR / st.study_name, top=top, seeds=seeds, retrain=retrain,
                        device=resolve_device(device), data_dir=str(data_dir) if data_dir else None, redo=redo,
                        overrides=overrides, echo=typer.echo, progress=True,  # a bar on a terminal, else epoch lines
                        select=select, distinct=distinct)
    table = Table(title=f"{st.study_name}: test split, {len(board.seeds)} seed(s) {board.seeds}, retrain {retrain}"
                  + (f" ({' '.join(overrides)})" if overrides else ""))
    metric = board.entries[0].metric if board.entries else "accuracy"  # the spec's train.metric: the ranking key
    short = {"accuracy": "acc", "balanced_accuracy": "bal acc", "macro_f1": "macro-F1"}.get(metric, metric)
    columns = ["rank", "trial", "params", "FLOPs", f"val {short}"] + (["val (re-trained)"] if board.selection else [])
    ranked = [] if metric in ("accuracy", "macro_f1") else [f"test {short}", "± std "]  # macro-F1 has its column
    for col in columns + ["test acc", "± std", "95 % CI", *ranked, "macro-F1", "ms/img"]:
        table.add_column(col, justify="right", no_wrap=True)
    for i, e in enumerate(board.entries, 1):
        a = e.accuracy
        ci = f"{a.ci_low:.4f}–{a.ci_high:.4f}" if a.ci_low is not None else "-"
        sel = [f"{board.selection.val_of(e.trial):.4f}"] if board.selection else []
        score = [f"{e.score.mean:.4f}", f"{e.score.std:.4f}"] if ranked else []
        table.add_row(str(i), f"#{e.trial}", f"{e.params:,}", _human(e.flops), f"{e.val_metric:.4f}", *sel,
                      f"{a.mean:.4f}", f"{a.std:.4f}", ci, *score, f"{e.macro_f1:.4f}", f"{e.latency_ms:.2f}")
    Console(width=max(Console().width, 140 if ranked else 120)).print(table)
    if board.comparison is not None:
        typer.echo(f"winner #{board.entries[0].trial} vs runner-up #{board.entries[1].trial} (test {metric}): "
                   f"{board.comparison.describe()}")
    typer.echo(f"results: {board.folder / 'leaderboard.json'}")
    if export is not None:
        from archsearch.export import write_bundle

        write_bundle(board, st, export, force=force, data_dir=str(data_dir) if data_dir else None)
        typer.echo(f"exported trial #{board.entries[0].trial} to {export}/ (model card: {export / 'README.md'})")


@app.command()
def reproduce(
    bundle: Annotated[Path, typer.Argument(help="a folder written by `archsearch best --export`")],
    tolerance: Annotated[float, typer.Option(min=0, help="largest accepted |test accuracy difference|")] = 0.005,
    device: DeviceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Re-train an exported bundle's spec as the export did and compare its test accuracy. Exit 1 if it differs."""
    from archsearch.export import reproduce as run_reproduce

    r = run_reproduce(bundle, device=device, data_dir=str(data_dir) if data_dir else None, tolerance=tolerance,
                      progress=True)
    typer.echo(f"test accuracy {r.got:.4f} vs {r.expected:.4f} in {bundle / 'metrics.json'} "
               f"(difference {100 * r.diff:+.2f} pp, tolerance {100 * tolerance:.2f} pp); same test split: "
               f"{'yes' if r.fingerprint_match else 'NO'}; training took {r.seconds:.1f} s")
    typer.echo("reproduced" if r.ok else "NOT reproduced")
    if not r.ok:
        raise typer.Exit(1)


@app.command()
def status(
    storage: StorageOpt = None,
    studies_dir: Annotated[Path, typer.Option(help="without --storage: every studies/*.db here")] = Path("studies"),
) -> None:
    """The studies in a storage with trial counts and best values."""
    from archsearch.errors import ArchsearchError
    from archsearch.search import study_summaries
    from archsearch.search.storage import check_exists

    if storage is None and not studies_dir.is_dir():
        raise ArchsearchError(f"--studies-dir {studies_dir}: no such folder")
    urls = [check_exists(storage, f"--storage {storage}", studies_dir)] if storage else [f"sqlite:///{p}" for p in sorted(studies_dir.glob("*.db"))]
    if not urls:
        typer.echo(f"no studies in {studies_dir}/ (give --storage URL for another storage)")
        return
    import optuna

    from archsearch.search.study import counts, describe_counts

    for url in urls:
        for s in study_summaries(url):
            best = s.best_trial.values if s.best_trial is not None else None
            best_s = ", ".join(f"{v:.4f}" for v in best) if best else "-"
            c = counts(optuna.load_study(study_name=s.study_name, storage=url))
            more = describe_counts(c)
            typer.echo(f"{s.study_name:<30} {c['finished']:>5} finished{f' ({more})' if more else ''}  "
                       f"best {best_s:<16} {url}")


@app.command()
def dashboard(
    study: Annotated[Optional[str], typer.Option(help="study to open (default: the storage's only study)")] = None,
    storage: Annotated[Optional[str], typer.Option(
        help="Optuna storage URL (default sqlite:///studies/<study>.db, or the only studies/*.db)")] = None,
    host: Annotated[str, typer.Option(help="address to listen on (127.0.0.1: this machine only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on (0: any free port)")] = 8080,
    studies_dir: Annotated[Path, typer.Option(help="where `archsearch run` keeps *.db and <study>/artifacts/")] = Path("studies"),
) -> None:
    """Browse a study in optuna-dashboard: trials, params, user attrs and artifacts (spec, confusion)."""
    from archsearch.report.dashboard import launch

    launch(study, storage, host, port, studies_dir, echo=typer.echo)


@app.command()
def report(
    study: Annotated[Optional[str], typer.Option(help="study to report (default: the storage's only study)")] = None,
    storage: StorageOpt = None,
    bundle: Annotated[Optional[Path], typer.Option(
        help="a folder written by `best --export` (default: the study's newest one found here)")] = None,
    out: Annotated[Path, typer.Option(help="the HTML file to write")] = Path("report.html"),
) -> None:
    """One self-contained HTML report: the search's plots and trials, and the exported winner's test results."""
    st, _ = _open_study_for(study, storage)  # before the figures' imports
    from archsearch.report.bundle import find_bundle
    from archsearch.report.write import write_report

    if bundle is None:
        bundle = find_bundle(st.study_name)
        typer.echo(f"bundle: {bundle} (the study's newest export here; --bundle DIR for another)" if bundle else
                   f"no export bundle of {st.study_name} here (`archsearch best --export DIR`): the search part only")
    typer.echo(write_report(st, out, bundle, find_in=None))


@app.command()
def ablate(
    params: Annotated[str, typer.Option(help="comma-separated discrete parameters of the space, e.g. regularization,activation")],
    study: Annotated[Optional[str], typer.Option(help="study to read (default: the storage's only study)")] = None,
    storage: StorageOpt = None,
    seeds: Annotated[int, typer.Option(min=1, max=20, help="train.seed 0..S-1 for each option")] = 3,
    device: Annotated[Optional[str], typer.Option(help="cpu | cuda (default: cuda when available)")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="where the dataset files are")] = None,
    out: Annotated[Optional[Path], typer.Option(help="JSON results (default studies/<study>/ablation.json)")] = None,
) -> None:
    """Each option of each named parameter, trained with everything else at the best trial's values,
    over seeds, compared on the validation split (never test)."""
    from archsearch.fs import ensure_writable_file, write_json
    from archsearch.search.ablation import ablate as run_ablation
    from archsearch.search.storage import STUDIES_DIR

    st, _ = _open_study_for(study, storage)
    names = [p.strip() for p in params.split(",") if p.strip()]
    if not names:
        raise typer.BadParameter("name at least one parameter", param_hint="--params")
    path = out or STUDIES_DIR / st.study_name / "ablation.json"
    ensure_writable_file(path, "--out")  # before the training, not after it
    result = run_ablation(st, names, seeds, device=device, data_dir=str(data_dir) if data_dir else None,
                          echo=typer.echo)
    typer.echo(f"\nval metric around trial #{result.best_trial}, {seeds} seed(s) each: mean ± std, "
               "difference to the best trial's own option")
    for v in result.variants:
        ref = next(r for r in result.variants if r.param == v.param and r.is_best)
        mark = "*" if v.is_best else " "
        typer.echo(f" {mark}{v.param:<18} {v.option:<30} {v.params:>10,} params  {v.mean:.4f} ± {v.std:.4f}  "
                   f"{(v.mean - ref.mean) * 100:+6.2f} pp")
    write_json(path, {"study": st.study_name, "best_trial": result.best_trial, "seeds": seeds, "variants": [
        {"param": v.param, "option": v.option, "best_trial_option": v.is_best, "params": v.params,
         "val": v.values, "mean": v.mean, "std": v.std} for v in result.variants]})
    typer.echo(f"wrote {path}")


@app.command()
def insights(
    study: Annotated[Optional[str], typer.Option(help="study to read (default: the storage's only study)")] = None,
    storage: StorageOpt = None,
    epoch: Annotated[int, typer.Option(min=1, help="the early epoch at which every trial that trained is compared")] = 1,
) -> None:
    """Which choices mattered: parameter importances, and each value of each discrete parameter
    at an early epoch (all trials, pruned ones too) and at the end (trials that trained to the end)."""
    from archsearch.errors import ArchsearchError
    from archsearch.report.insights import choice_rows, importances, longest_run
    from archsearch.report.records import metric_name

    st, _ = _open_study_for(study, storage)
    longest = longest_run(st)
    if longest and epoch > longest:
        raise ArchsearchError(f"--epoch {epoch}: no trial of {st.study_name} trained that long (the longest: "
                              f"{longest} epoch{'s' if longest != 1 else ''})")
    metric = metric_name(st)
    imp = importances(st)
    n = len(st.trials)
    typer.echo(f"study {st.study_name}: {n} trial{'s' if n != 1 else ''}")
    if imp:
        typer.echo(f"\nparameter importances for {metric} (Optuna's default evaluator, trials that trained to the end)")
        for name, value in imp.items():
            typer.echo(f"  {name:<24} {value:6.3f}")
    else:
        typer.echo("\nparameter importances: need two trials that trained to the end and a parameter that varies")
    rows = choice_rows(st, epoch)
    if not rows:
        typer.echo("\nno discrete parameter took two values among the trials that trained")
        return

    def cell(n: int, median: float | None, best: float | None) -> str:
        return f"{n:>3}  {median:.4f}  {best:.4f}" if n else f"{n:>3}  {'-':>6}  {'-':>6}"

    typer.echo(f"\n{metric} by choice: n, median, best — at epoch {epoch} (every trial that reached it) | at the end")
    for r in rows:
        typer.echo(f"  {r.param:<18} {r.value:<30} {cell(r.early_n, r.early_median, r.early_best)} | "
                   f"{cell(r.final_n, r.final_median, r.final_best)}")


def _one_line_summaries() -> None:
    """The command list shows each docstring's first paragraph as one flowing line (typer's rich mode
    keeps the docstring's line breaks there)."""
    import inspect

    for info in app.registered_commands:
        if info.short_help is None and info.callback is not None and info.callback.__doc__:
            info.short_help = " ".join(inspect.cleandoc(info.callback.__doc__).split("\n\n")[0].split())


_one_line_summaries()


def main() -> None:
    """Entry point: run the app; user errors → one line on stderr, exit 2."""
    import signal

    from archsearch.errors import ArchsearchError

    def _terminate(signum, frame):  # SIGTERM ends like Ctrl-C: the running trial is recorded, connections closed
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()  # standalone: click prints usage errors itself and exits 2
    except ArchsearchError as e:
        _err(str(e))
        sys.exit(2)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
