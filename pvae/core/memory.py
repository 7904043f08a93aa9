"""Process memory: let glibc keep freed memory for the next tensor of the same size.

glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and returns it to the system on ``free``. A torch step on CPU allocates and frees
activations far above that (a 64^3 batch of 16 with 16 channels is 268 MB), so every step
maps new pages, and the kernel zero-fills each page on its first touch. Measured on 2 cores
(AMD EPYC): decoding a batch of 16 at 64^3 spent as much system time as compute (0.33 s
wall, 191,000 page faults), and 0.17 s with 1,400 faults once freed memory is kept; a
training step at 100^3 in float32 ran 1.6-2.1x faster (``bench/bench_train.py``).

:func:`retain_freed_memory` turns mmap off for ``malloc`` (large blocks come from the heap,
and go back to it when freed) and raises the trim threshold, so up to
:data:`TRIM_THRESHOLD` of free heap stays mapped. The cost is resident memory: a process
keeps its peak, and blocks of many sizes fragment the heap. Measured peaks: 4 training steps
at 100^3 (batch 8) 1.41 -> 1.92 GiB; 64^3 decodes, a backward pass and a novelty query
together 4.7 -> 8.4 GiB. The ``pvae`` command and every study trial call it; set
``PVAE_RETAIN_FREED_MEMORY=0`` to keep glibc's defaults where memory is short. Other C
libraries are left alone.
"""

import ctypes
import ctypes.util
import os
import platform
from functools import cache

TRIM_THRESHOLD = 2**30  # bytes of free heap top that stay mapped (glibc default 128 KiB)
_M_TRIM_THRESHOLD = -1  # mallopt parameters, <malloc.h>
_M_MMAP_MAX = -4
_GLIBC_MMAP_MAX = 65536  # glibc's defaults, restored by retain_freed_memory(False)
_GLIBC_TRIM_THRESHOLD = 128 * 1024


@cache
def _libc():
    if platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def retain_freed_memory(enabled: bool = True) -> bool:
    """Keep freed memory in the process for reuse (glibc only).

    Parameters
    ----------
    enabled : bool
        True: large blocks from the heap, ``TRIM_THRESHOLD`` bytes kept. False: glibc's
        default limits again (for benchmarks that compare both).

    Returns
    -------
    bool
        Whether the setting was applied: False on a C library other than glibc, or when
        ``enabled`` and the environment sets ``PVAE_RETAIN_FREED_MEMORY=0``.
    """
    libc = _libc()
    if libc is None or (enabled and os.environ.get("PVAE_RETAIN_FREED_MEMORY") == "0"):
        return False
    mmap_max, trim = (0, TRIM_THRESHOLD) if enabled else (_GLIBC_MMAP_MAX, _GLIBC_TRIM_THRESHOLD)
    return bool(libc.mallopt(_M_MMAP_MAX, mmap_max)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim))
