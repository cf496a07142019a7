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
        extra = f", search space: {len(space.dims)} dimensions, {checked} extreme specs valid" if space.dims else ""
        typer.echo(f"ok: {path} ({kind}, {spec.data.dataset}{extra})")
    if failed:
        raise typer.Exit(2)


@app.command()
def summary(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="spec file")],
    batch_size: Annotated[Optional[int], typer.Option(help="batch for the memory estimate (default: train.batch_size)")] = None,
    set_: SetOpt = None,
) -> None:
    """Per layer: output shape and parameters; totals: params, FLOPs, a training-memory estimate."""
    from rich.console import Console
    from rich.table import Table

    from archsearch.build import build_model, summarize
    from archsearch.spec import load_spec
    from archsearch.spec.base import fmt_shape

    spec = load_spec(spec_path, set_ or [])
    model = build_model(spec)
    s = summarize(model, spec.model.input_shape)
    table = Table(title=f"{spec_path}  input {fmt_shape(s.input_shape)}")
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
        f"optimizer {_bytes(mem['optimizer'])}, activations {_bytes(mem['activations'])})"
    )


@app.command()
def schema(
    out: Annotated[Optional[Path], typer.Option(help="write to this file instead of stdout")] = None,
) -> None:
    """Print the JSON Schema of specs (for editor completion, e.g. yaml-language-server)."""
    from archsearch.spec import Spec

    text = json.dumps(Spec.model_json_schema(), indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"wrote {out}")


DeviceOpt = Annotated[Optional[str], typer.Option(help="cpu | cuda | cuda:N | auto (default: cuda when available)")]
DataDirOpt = Annotated[
    Optional[Path], typer.Option("--data-dir", help="dataset folder (else $ARCHSEARCH_DATA, system packages, cache)")
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
) -> None:
    """Measure a run's best model on the held-out test split (or val): metrics, confusion, latency."""
    from rich.console import Console
    from rich.table import Table

    from archsearch.evaluate import evaluate_run

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
        f"written to {run_dir / f'eval_{split}.json'} (test-split fingerprint {r['fingerprint'][:12]})"
    )


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
    for i, spec in enumerate(sample_specs(space, n, seed)):
        data = spec.model_dump(mode="json", exclude_defaults=True)
        typer.echo(f"# sample {i + 1}/{n}\n" + yaml.safe_dump(data, sort_keys=False) + "---")


@app.command()
def run(
    space_path: Annotated[Path, typer.Argument(metavar="SPACE", help="a spec with search dimensions")],
    trials: Annotated[Optional[int], typer.Option(min=1, help="finished trials wanted for the whole study")] = None,
    timeout: Annotated[Optional[float], typer.Option(min=1, help="seconds before no new trial starts")] = None,
    storage: StorageOpt = None,
    study: StudyOpt = None,
    device: DeviceOpt = None,
    set_: SetOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Search a space with Optuna: create or resume the study, train trials until N have finished."""
    from archsearch.search import run_search
    from archsearch.search.study import best_ok_trials
    from archsearch.spec.search import SearchSpec
    from archsearch.spec.space import load_space

    space = load_space(space_path, set_ or [])
    try:
        search = SearchSpec.model_validate(space.section("search"))
    except Exception as e:
        from pydantic import ValidationError

        from archsearch.errors import SpecError
        from archsearch.spec.io import validation_problems

        if isinstance(e, ValidationError):
            raise SpecError(validation_problems(e, space.data, dict(space.lines), ("search",)), space.source) from None
        raise
    name = study or search.study or space.name or space_path.stem
    result = run_search(space, search, study_name=name, storage=storage, trials=trials, timeout=timeout,
                        device=device, data_dir=str(data_dir) if data_dir else None, echo=typer.echo)
    best = best_ok_trials(result.study, 1)
    summary = f"best trial #{best[0].number}: val {best[0].user_attrs['val_metric']:.4f}, " \
              f"{best[0].user_attrs['params']:,} params" if best else "no completed trial yet"
    typer.echo(f"{result.finished} finished trial(s) ({result.stopped}); {summary}")
    if result.stopped == "interrupted":
        raise typer.Exit(130)


@app.command()
def status(
    storage: StorageOpt = None,
    studies_dir: Annotated[Path, typer.Option(help="without --storage: every studies/*.db here")] = Path("studies"),
) -> None:
    """The studies in a storage with trial counts and best values."""
    from archsearch.search import study_summaries

    urls = [storage] if storage else [f"sqlite:///{p}" for p in sorted(studies_dir.glob("*.db"))]
    if not urls:
        typer.echo(f"no studies in {studies_dir}/ (give --storage URL for another storage)")
        return
    for url in urls:
        for s in study_summaries(url):
            best = s.best_trial.values if s.best_trial is not None else None
            best_s = ", ".join(f"{v:.4f}" for v in best) if best else "-"
            typer.echo(f"{s.study_name:<30} {s.n_trials:>5} trials  best {best_s:<16} {url}")


def main() -> None:
    """Entry point: run the app; user errors → one line on stderr, exit 2."""
    from archsearch.errors import ArchsearchError

    try:
        app()  # standalone: click prints usage errors itself and exits 2
    except ArchsearchError as e:
        _err(str(e))
        sys.exit(2)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
