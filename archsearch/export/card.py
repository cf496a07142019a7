"""The model card (README.md) of an exported bundle, from its metrics."""

from __future__ import annotations


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def _choice(m: dict) -> str:
    """How the winner was chosen, and what that means for its test number."""
    entries = m.get("leaderboard", {}).get("entries", [])
    sel = m.get("leaderboard", {}).get("selection")
    metric = ((entries[0].get("test_metric") or {}).get("name") if entries else None) or "accuracy"
    if sel:
        shown = ", ".join(f"#{c['trial']} {c['val_metric']:.4f}" for c in sel["candidates"])
        how = (f"The winner was chosen on the validation split: each of the search's top {len(sel['candidates'])} "
               f"trials was re-trained once in the re-training setting on the train split alone (val {sel['metric']}: "
               f"{shown}) and the {len(sel['kept'])} best went on to the test split.")
        if len(entries) <= 1:
            return how + " The test split chose nothing, so its number is unbiased."
        return how + f" Among those, the best by mean test {metric} won, which makes its number slightly optimistic."
    if len(entries) <= 1:
        return "The winner is the search's best trial by validation metric; the test split chose nothing."
    return (f"The winner is the best of the leaderboard's top trials by mean test {metric} over seeds; choosing "
            "among several candidates on the test split makes this number slightly optimistic (unbiased with "
            "`--top 1` or `--select 1`).")


def model_card(m: dict, pre: dict, parity: dict) -> str:
    data = m.get("data", {})
    sizes = data.get("sizes", {})
    seeds = m["test_accuracy_over_seeds"]
    ex = m["export"]
    s = m["search"]
    ci = seeds["ci95"]
    rows = "\n".join(f"| {r['seed']} | {_pct(r['accuracy'])} | {r['macro_f1']:.4f} | {r['epochs']} | {r['seconds']:.1f} |"
                     for r in m["per_seed"])
    onnx = parity["onnx"]
    onnx_line = (f"- `model.onnx`: ONNX opset {onnx.get('opset')}, "
                 + (f"max |Δlogit| {onnx['max_abs_diff']:.1e} vs eager on {onnx['batch']} test images (tolerance "
                    f"{onnx['atol']:g})." if "max_abs_diff" in onnx else f"{onnx.get('parity', '')}.")
                 if "skipped" not in onnx else f"- ONNX: not written ({onnx['skipped']}).")
    pixels = f"; {pre['pixels']}" if pre.get("pixels") else ""
    classes = ", ".join(pre["classes"])
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    return f"""# {m.get('spec_name') or 'model'} — archsearch export (study `{s['study']}`, trial #{m['trial']})

Test accuracy **{_pct(m['test']['accuracy'])}** (macro-F1 {m['test']['macro_f1']:.4f}) for these weights;
over {seeds['n']} seed(s): {_pct(seeds['mean'])} ± {_pct(seeds['std'])} (95 % CI {_pct(ci[0])} – {_pct(ci[1])}).
Validation {m['val']['metric']} in the search: {m['val']['value']:.4f}{" (the search's trial setting, before the re-training's changes below)" if m['export'].get('overrides') else ""}.
{m['params']:,} parameters, {m['flops']:,} FLOPs per image, {m['latency_ms_batch1_cpu']:.2f} ms per image at batch 1 (CPU).

## Load it

```python
import torch
model = torch.jit.load("model.ts").eval()   # input: float32 [B, {', '.join(map(str, pre['input_shape']))}], normalised as below
probs = model(x).softmax(1)                   # classes in preprocess.json
```

Normalisation: `x = (image / 255 - mean) / std` with mean {pre['mean']} and std {pre['std']}{pixels}.
Classes: {classes}.

## Data

- Dataset: {data.get('dataset', '?')} ({data.get('source', '')}); test split: {data.get('test_split', '?')},
  {m['test']['n']} images, fingerprint `{m['test_fingerprint'][:16]}` (sha256 of the samples and labels).
- Training for these weights: {'train + val re-training, ' + str(sizes.get('train', '?')) + ' images' if ex['retrain'] == 'full' else 'the search checkpoint (train split, best epoch on val)'};
  {ex['epochs']} epochs ({"`archsearch best` re-training with " + ', '.join('`' + o + '`' for o in ex['overrides']) if ex.get('overrides') else "the search's best epoch"}), seed {ex['seed']}.
- The test split was read only by `archsearch best` / this export, never during the search.

## Search

Study `{s['study']}`: {s['trials']} trials ({s.get('complete', 0)} complete, {s.get('pruned', 0)} pruned,
{s.get('fail', 0)} failed), {s['trial_seconds'] / 60:.1f} min of trial time. {_choice(m)}

| seed | test accuracy | macro-F1 | epochs | seconds |
|---:|---:|---:|---:|---:|
{rows}

## Files and checks

- `spec.yaml`: the resolved spec; `archsearch train spec.yaml` trains it again, `archsearch reproduce .` re-runs this export's training and compares.
- `best.pt`: every weight, for `archsearch.build_model(archsearch.load_spec("spec.yaml", check_files=False), pretrained=False)` (the pretrained file or cache the training started from is not needed).
- `model.ts`: TorchScript, max |Δlogit| {parity['torchscript']['max_abs_diff']:.1e} vs eager on {parity['torchscript']['batch']} test images (tolerance {parity['torchscript']['atol']:g}).
{onnx_line}
- `metrics.json`: every number above, per-class test metrics and the confusion matrix.

Measured on the CPU in fp32 with {versions}.
"""
