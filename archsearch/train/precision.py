"""Device and numeric precision: `auto` picks bf16 autocast where the hardware runs it natively."""

from __future__ import annotations

import contextlib
from functools import lru_cache

import torch

from archsearch.errors import ArchsearchError


def resolve_device(name: str | None) -> torch.device:
    """'auto' / None → cuda when available, else cpu. 'cuda' without a GPU is a user error."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ArchsearchError("--device cuda: no CUDA device is available here (use --device cpu)")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ArchsearchError(f"--device: expected cpu, cuda, cuda:N or auto, got {name!r}")
    return torch.device(name)


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU has AMX-BF16 or AVX512-BF16 (bf16 matmuls run natively, much faster)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto → bf16 on GPUs that support it and on CPUs with AMX/AVX512-BF16, else fp32."""
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ArchsearchError("train.precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
