"""The CPU allocator tuning: freed 40 MB buffers are reused instead of re-faulted from the OS.

Each case runs in a fresh interpreter, because mallopt settings last for the whole process.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)

PROBE = """
import resource, torch
from archsearch.train.allocator import tune_cpu_allocator

def faults():
    x = torch.empty(40 << 20, dtype=torch.uint8); x.fill_(1); del x  # first touch is always a fault
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        x = torch.empty(40 << 20, dtype=torch.uint8); x.fill_(1); del x
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

untuned = faults()
tuned = tune_cpu_allocator()
again = tune_cpu_allocator()
print(untuned, tuned, again, faults())
"""


def probe(malloc: str | None) -> tuple[int, bool, bool, int]:
    env = {k: v for k, v in os.environ.items() if k != "ARCHSEARCH_MALLOC"}
    if malloc is not None:
        env["ARCHSEARCH_MALLOC"] = malloc
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    before, tuned, again, after = out.stdout.split()
    return int(before), tuned == "True", again == "True", int(after)


def test_tuning_stops_the_page_faults_of_reallocated_buffers():
    before, tuned, again, after = probe(None)
    pages = 20 * (40 << 20) // 4096
    assert before > pages // 2  # glibc's defaults: every 40 MB buffer is a fresh mmap
    assert tuned and again  # in effect, and a second call keeps saying so
    assert after < before // 20  # the heap hands back the same, already-mapped pages


def test_system_malloc_opts_out():
    before, tuned, again, after = probe("system")
    assert not tuned and not again
    assert after > before // 2  # nothing changed: still faulting
