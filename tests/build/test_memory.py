"""The CPU training-memory estimate against the memory a real training step takes.

Measured: growth of the process's peak resident memory (VmHWM, reset through /proc/self/clear_refs
just before the step) over one forward + backward + Adam step, in a fresh process, plus the
weights allocated before. Stated tolerance: the estimate
is within 0.6× to 1.5× of that measurement."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = r"""
import gc, re, sys, torch
def status(key):
    return int(re.search(key + r":\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
torch.set_num_threads(1)
from archsearch.spec import load_spec
from archsearch.build import build_model, summarize
spec = load_spec(sys.argv[1]); bs = int(sys.argv[2])
model = build_model(spec)
est = summarize(model, spec.model.input_shape).memory_bytes(bs)
x = torch.randn(bs, *spec.model.input_shape); y = torch.zeros(bs, dtype=torch.long)
opt = torch.optim.Adam(model.parameters())
gc.collect()
open("/proc/self/clear_refs", "w").write("5")  # reset the peak RSS to the current RSS
before = status("VmRSS")
torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
after = status("VmHWM")
print(est["total"], after - before + est["weights"])
"""


@pytest.mark.parametrize(("name", "batch"), [("s1_customnet", 256), ("s3_small_vgg", 128), ("s0_cnn", 128)])
def test_cpu_memory_estimate_within_tolerance(name, batch):
    out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "examples" / f"{name}.yaml"), str(batch)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    estimate, measured = map(int, out.stdout.split())
    assert 0.6 * measured <= estimate <= 1.5 * measured, (estimate / 2**20, measured / 2**20)
