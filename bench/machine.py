"""What machine a benchmark ran on, for the README's figures: CPU model, cores, bf16 features, GPU."""

from __future__ import annotations

import os
from pathlib import Path


def describe() -> str:
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    features = ", ".join(f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags) or "no AVX-512"
    text = f"{model}, {os.cpu_count()} cores ({features})"
    import torch

    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name()}"
    return text
