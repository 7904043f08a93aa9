"""The sparse kernels' two steps compiled as C, vectorised by the compiler: the CPU default.

Why C as well as numba: the in-place steps of :mod:`~pvae.physics.lbm.kernel_source` move
so few bytes that the traced collision's ~300 scalar operations per node bound numba's
kernel (measured on 2 cores, 64^3: ~80 MLUPS), and numba cannot vectorise it, since it
cannot tell the compiler that the 19 slot rows do not alias. Emitted as C with ``restrict``
and ``#pragma omp simd``, gcc or clang runs 16 nodes per AVX-512 instruction (step A with
plain vector loads, step B with gathers and scatters) and the kernel reaches the memory
bandwidth (``bench/results/lbm.md``).

The C source is generated once per process, compiled by the system compiler (``$CC``, else
``cc``, ``gcc`` or ``clang``) for the host CPU (``-march=native``) and cached as a shared
library in ``$PVAE_CACHE_DIR`` (default ``$XDG_CACHE_HOME/pvae`` or ``~/.cache/pvae``),
under a name that hashes the source, the compiler command and the CPU's model and
features, so that nodes of a cluster sharing a home directory each get their own build.
``-ffast-math`` is not used: on gcc it links code that switches the whole process to
flush-to-zero arithmetic. Without a working compiler :func:`load` returns None and the
numba kernel runs instead. Threads come from numba: a ``prange`` over chunks of nodes calls
the compiled step of each chunk.
"""

import ctypes
import hashlib
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numba

from pvae.physics.lbm.kernel_source import Dialect, step_bodies

FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast",
         "-fopenmp-simd", "-shared", "-fPIC")  # fmt: skip
_REALS = ("float", "double")
_INDICES = ("int32_t", "int64_t")
_CTYPES = {"float": ctypes.c_float, "double": ctypes.c_double}


def c_source() -> str:
    """The whole C file: step A for float and double, step B for each of those with int32
    and int64 tables (``step_a_<real>``, ``step_b_<real>_<index>``)."""
    parts = ["#include <stdint.h>"]
    for real in _REALS:
        scalars = f"{real} force0, {real} force1, {real} force2, {real} omega_plus, " + (
            f"{real} omega_minus"
        )
        span = "int64_t nn, int64_t start, int64_t stop"
        for index in _INDICES:
            source = step_bodies(Dialect("c", real), index)
            if index == _INDICES[0]:  # step A has no table: one per real
                signature = f"step_a_{real}({real} *restrict f, {span}, {scalars})"
                parts.append(_function(signature, source.step_a))
            step_b = source.table_slots + source.indexed
            table = f"const {index} *restrict table"
            signature = f"step_b_{real}_{index}({real} *restrict f, {table}, {span}, {scalars})"
            parts.append(_function(signature, step_b))
    return "\n\n".join(parts) + "\n"


def _function(signature: str, body: list[str]) -> str:
    """A C function looping ``body`` over nodes ``start:stop`` as one SIMD loop."""
    lines = "\n".join(" " * 8 + line for line in body)
    return (
        f"void {signature}\n{{\n#pragma omp simd\n"
        f"    for (int64_t n = start; n < stop; ++n) {{\n{lines}\n    }}\n}}"
    )


def _compiler() -> list[str] | None:
    """The compiler command: ``$CC`` (split as a shell would), else the first of cc, gcc,
    clang on the PATH; None if there is none."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    found = [shutil.which(name) for name in ("cc", "gcc", "clang")]
    return next(([path] for path in found if path), None)


def _cpu_identity() -> str:
    """Model and feature flags of this CPU (Linux), else the platform's processor string."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine() + platform.processor()
    lines = re.findall(r"^(?:model name|flags|Features)\s*:.*$", text, flags=re.MULTILINE)
    return platform.machine() + "".join(sorted(set(lines)))


def cache_dir() -> Path:
    """Where compiled kernels are kept (``$PVAE_CACHE_DIR``, else the XDG cache)."""
    if os.environ.get("PVAE_CACHE_DIR"):
        return Path(os.environ["PVAE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pvae"


def _build(command: list[str], source: str, target: Path) -> str | None:
    """Compile ``source`` to the shared library ``target`` atomically; the compiler's first
    error line on failure, None on success. Without ``-march=native`` (compilers that do
    not know it) as a second try."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        c_file, library = Path(scratch) / "kernel.c", Path(scratch) / target.name
        c_file.write_text(source)
        for flags in (FLAGS, tuple(flag for flag in FLAGS if flag != "-march=native")):
            try:
                done = subprocess.run(
                    [*command, *flags, "-o", str(library), str(c_file)],
                    capture_output=True, text=True, timeout=300,
                )  # fmt: skip
            except (OSError, subprocess.SubprocessError) as exc:
                return str(exc)
            if done.returncode == 0:
                os.replace(library, target)  # atomic: concurrent builders race harmlessly
                return None
            error = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        return error


@cache
def load() -> tuple[ctypes.CDLL | None, str]:
    """The compiled kernels, built on first use: ``(library, "")``, or ``(None, why)`` when
    no compiler could build them."""
    command = _compiler()
    if command is None:
        return None, "no C compiler found (set CC)"
    source = c_source()
    key = hashlib.sha256("\0".join([source, *command, *FLAGS, _cpu_identity()]).encode())
    target = cache_dir() / "lbm" / f"aa-{key.hexdigest()[:20]}.so"
    if not target.exists():
        try:
            error = _build(command, source, target)
        except OSError:  # cache not writable: build for this process, load, remove the file
            with tempfile.TemporaryDirectory(prefix="pvae-lbm-") as scratch:
                own = Path(scratch) / target.name
                error = _build(command, source, own)
                return (None, _failed(command, error)) if error else (ctypes.CDLL(str(own)), "")
        if error:
            return None, _failed(command, error)
    return ctypes.CDLL(str(target)), ""


def _failed(command: list[str], error: str) -> str:
    return f"{shlex.join(command)} failed: {error}"


@cache
def stepper(real: str, index: str):
    """numba function advancing chunks one step with the compiled kernels.

    Parameters
    ----------
    real : {"float", "double"}
        C type of the populations.
    index : {"int32_t", "int64_t"}
        C type of the table entries.

    Returns
    -------
    callable or None
        ``step(f, table, chunk_start, chunk_stop, chunk_lattice, active, phase, force,
        omega_plus, omega_minus)``, the signature of the numba kernel
        (:func:`~pvae.physics.lbm.sparse_cpu.numba_stepper`); None without a compiler.
    """
    library, _ = load()
    if library is None:
        return None
    scalars = [_CTYPES[real]] * 5
    step_a = getattr(library, f"step_a_{real}")
    step_a.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, *scalars]
    step_a.restype = None
    step_b = getattr(library, f"step_b_{real}_{index}")
    step_b.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                       ctypes.c_int64, *scalars]  # fmt: skip
    step_b.restype = None

    @numba.njit(parallel=True)
    def step(f, table, chunk_start, chunk_stop, chunk_lattice, active, phase, force,
             omega_plus, omega_minus):  # pragma: no cover - compiled  # fmt: skip
        nn = f.shape[1]
        for chunk in numba.prange(chunk_start.shape[0]):
            lattice = chunk_lattice[chunk]
            if active[lattice]:
                fx, fy, fz = force[lattice, 0], force[lattice, 1], force[lattice, 2]
                start, stop = chunk_start[chunk], chunk_stop[chunk]
                if phase[lattice] == 0:
                    step_a(f.ctypes.data, nn, start, stop, fx, fy, fz, omega_plus, omega_minus)
                else:
                    step_b(f.ctypes.data, table.ctypes.data, nn, start, stop, fx, fy, fz,
                           omega_plus, omega_minus)  # fmt: skip

    return step
