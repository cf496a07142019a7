"""Serialised forms of a model — TorchScript, ONNX — each checked against the eager model."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch

PARITY_ATOL = 1e-4  # max |logit difference| allowed between eager and an exported form (fp32)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path) -> dict:
    """Trace `model` (eval, CPU) to TorchScript at `path`; parity against eager on `example`.

    Raises:
        RuntimeError: the traced module's logits differ by more than PARITY_ATOL.
    """
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but the format remains
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path))
        diff = _max_diff(model(example), loaded(example))
    if diff > PARITY_ATOL:
        raise RuntimeError(f"TorchScript differs from the eager model by {diff:.2e} > {PARITY_ATOL:g}")
    return {"file": path.name, "max_abs_diff": diff, "atol": PARITY_ATOL, "batch": int(example.shape[0])}


def onnx_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnx") is not None and importlib.util.find_spec("onnxscript") is not None


def onnx(model: torch.nn.Module, example: torch.Tensor, path: Path) -> dict:
    """Export to ONNX (torch.onnx's exporter, dynamic batch) at `path`; parity against eager with
    onnxruntime when it is installed. Returns what was done, or {"skipped": why}."""
    if not onnx_available():
        return {"skipped": "the onnx and onnxscript packages are not installed (pip install 'archsearch[onnx]')"}
    import onnx as onnx_pkg

    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: batch},), external_data=False, verbose=False)
    opset = next((o.version for o in onnx_pkg.load(str(path)).opset_import if o.domain in ("", "ai.onnx")), None)
    out: dict = {"file": path.name, "opset": opset, "atol": PARITY_ATOL, "batch": int(example.shape[0])}
    try:
        import onnxruntime as ort
    except ImportError:
        out["parity"] = "not checked: onnxruntime is not installed"
        return out
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"input": example.numpy()})[0])
    with torch.no_grad():
        diff = _max_diff(model(example), got)
    if diff > PARITY_ATOL:
        raise RuntimeError(f"ONNX differs from the eager model by {diff:.2e} > {PARITY_ATOL:g}")
    out["max_abs_diff"] = diff
    return out
