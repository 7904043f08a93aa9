"""Retaining freed memory: a freed large tensor stays mapped for the next one (glibc)."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")

# resident memory (MiB) released by freeing a 48 MiB tensor, five times: glibc maps each block
# above 32 MiB on its own and unmaps it when freed, unless freed memory is kept
_SCRIPT = """
import os, sys, torch
from pvae.core.memory import retain_freed_memory
applied = retain_freed_memory(sys.argv[1] == "retain")
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
released = []
for _ in range(5):
    y = torch.empty(12 * 2**20).fill_(2.0)
    before = resident()
    del y
    released.append(before - resident())
print(applied, max(released), min(released))
"""


def _released(mode: str, **env) -> tuple[str, float, float]:
    """(applied, most and least MiB released by one free) in a fresh interpreter."""
    applied, most, least = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, check=True,
        env={**os.environ, **env},
    ).stdout.split()  # fmt: skip
    return applied, float(most), float(least)


def test_freed_tensors_stay_mapped_for_reuse():
    applied, most, _ = _released("retain")
    assert applied == "True"
    assert most < 1.0
    applied, _, least = _released("default")  # glibc's limits: each free unmaps 48 MiB
    assert applied == "True"
    assert least > 47.0


def test_environment_opts_out():
    applied, _, least = _released("retain", PVAE_RETAIN_FREED_MEMORY="0")
    assert applied == "False"
    assert least > 47.0
