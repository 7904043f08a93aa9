"""Sparse fused stream-collide kernel for CPUs (numba), the default on CPU.

Why a second implementation: measured on 2 cores (Xeon, AVX-512) for a 64^3 sample of
porosity 0.6 in float32, eager torch reaches ~4-8 MLUPS and ``torch.compile`` (inductor C++)
~12-19 MLUPS after a 10-15 s compile, while this kernel reaches ~70 MLUPS. It wins by

* storing only fluid nodes (a 0.6-porosity sample does 40 % less work and traffic),
* fusing pull streaming, bounce-back and collision in one pass over two population
  arrays, with bounce-back folded into a precomputed gather table
  (:func:`~pvae.physics.lbm.streaming.pull_sources`),
* fully unrolled straight-line code for the 19 populations (a loop over q with a scratch
  array runs ~2.6x slower).

The unrolled body is not written by hand: :func:`_kernel_source` traces the same
:func:`~pvae.physics.lbm.collision.collide` that the torch path runs, with symbols that
record each arithmetic operation as one line of Python, and numba compiles the result. The
physics therefore exists once; ``tests/test_lbm.py`` checks both paths agree.

Work is split in chunks of nodes that never straddle two lattices, so lattices whose
permeability has converged are skipped (``active``) and a batch gives the same numbers as
one-by-one runs. Lattices are also advanced in groups of about :data:`GROUP_BYTES` of
state, each group all its steps before the next: the lattices are independent, and a group
that stays in cache runs ~2.5x faster than sweeping the whole batch every step (measured:
one 64^3 lattice ~85 MLUPS, three at once ~35 MLUPS).
"""

from functools import cache

import numba
import numpy as np

from pvae.physics.lbm.collision import collide
from pvae.physics.lbm.lattice import VELOCITIES, Q
from pvae.physics.lbm.streaming import pull_sources

_CHUNK = 4096  # nodes per parallel work item
_VELOCITY_NODES = 2**18  # nodes per block when computing velocities
GROUP_BYTES = 40 * 2**20  # target state (populations + gather table) per lattice group


class _Symbol:
    """A traced scalar: each operation appends ``tN = a op b`` to the trace."""

    __slots__ = ("name", "trace")

    def __init__(self, name: str, trace: list[str]) -> None:
        self.name = name
        self.trace = trace

    def _emit(self, left: object, op: str, right: object) -> "_Symbol":
        name = f"t{len(self.trace)}"
        self.trace.append(f"{name} = {_operand(left)} {op} {_operand(right)}")
        return _Symbol(name, self.trace)

    def __add__(self, other: object) -> "_Symbol":
        return self._emit(self, "+", other)

    def __radd__(self, other: object) -> "_Symbol":
        return self._emit(other, "+", self)

    def __sub__(self, other: object) -> "_Symbol":
        return self._emit(self, "-", other)

    def __rsub__(self, other: object) -> "_Symbol":
        return self._emit(other, "-", self)

    def __mul__(self, other: object) -> "_Symbol":
        return self._emit(self, "*", other)

    def __rmul__(self, other: object) -> "_Symbol":
        return self._emit(other, "*", self)

    def __neg__(self) -> "_Symbol":
        return self._emit(0.0, "-", self)


def _operand(value: object) -> str:
    return value.name if isinstance(value, _Symbol) else repr(float(value))


def _kernel_source() -> str:
    """Python source of the fused kernel, with the collision traced from :func:`collide`."""
    trace: list[str] = []
    fin = [_Symbol(f"f{q}", trace) for q in range(Q)]
    force = [_Symbol(f"force{axis}", trace) for axis in range(3)]
    out = collide(fin, force, _Symbol("omega_plus", trace), _Symbol("omega_minus", trace))
    pad = " " * 16
    gather = [f"{pad}f0 = flat[n]"] + [f"{pad}f{q} = flat[table[{q - 1}, n]]" for q in range(1, Q)]
    store = [f"{pad}g[{q}, n] = {_operand(out[q])}" for q in range(Q)]
    body = "\n".join(gather + [pad + line for line in trace] + store)
    return f"""
def stream_collide(f, g, table, chunk_start, chunk_stop, chunk_lattice, active, force,
                   omega_plus, omega_minus):
    flat = f.ravel()
    for chunk in prange(chunk_start.shape[0]):
        lattice = chunk_lattice[chunk]
        if active[lattice]:
            force0 = force[lattice, 0]
            force1 = force[lattice, 1]
            force2 = force[lattice, 2]
            for n in range(chunk_start[chunk], chunk_stop[chunk]):
{body}
"""


@cache
def _stream_collide():
    namespace = {"prange": numba.prange}
    exec(compile(_kernel_source(), "<pvae.physics.lbm.sparse_cpu>", "exec"), namespace)
    return numba.njit(parallel=True, fastmath=True)(namespace["stream_collide"])


@numba.njit(parallel=True)
def _chunk_sums(f, chunk_start, chunk_stop):  # pragma: no cover - compiled
    sums = np.zeros((chunk_start.shape[0], f.shape[0]))
    for chunk in numba.prange(chunk_start.shape[0]):
        for q in range(f.shape[0]):
            acc = 0.0
            for n in range(chunk_start[chunk], chunk_stop[chunk]):
                acc += f[q, n]
            sums[chunk, q] = acc
    return sums


class SparseCpuLattices:
    """L periodic D3Q19 lattices stored as lists of fluid nodes, advanced by numba.

    Parameters
    ----------
    fluid : np.ndarray of bool, shape (L, Z, Y, X)
        Fluid nodes of each lattice (every lattice has at least one), axes (lattice, z, y, x).
    force : np.ndarray, shape (L, 3)
        Body-force density of each lattice, (x, y, z) components, lattice units.
    omega_plus, omega_minus : float
        TRT relaxation rates.
    dtype : np.dtype
        Population storage precision (float32 or float64).
    """

    def __init__(
        self,
        fluid: np.ndarray,
        force: np.ndarray,
        omega_plus: float,
        omega_minus: float,
        dtype: np.dtype,
    ) -> None:
        self.table = pull_sources(fluid)
        self.fluid = fluid
        n_lattices = fluid.shape[0]
        ends = np.cumsum(fluid.reshape(n_lattices, -1).sum(axis=1))
        starts = np.concatenate([[0], ends[:-1]])
        self.node_ranges = np.stack([starts, ends], axis=1)  # (L, 2): first node, end node
        chunks = np.array(
            [
                (lo, min(lo + _CHUNK, end), lattice)
                for lattice, (start, end) in enumerate(zip(starts, ends, strict=True))
                for lo in range(int(start), int(end), _CHUNK)
            ],
            dtype=np.int64,
        )  # (n_chunks, 3): first node, end node, lattice
        self.chunk_start, self.chunk_stop, self.chunk_lattice = (
            np.ascontiguousarray(chunks[:, column]) for column in range(3)
        )
        self.n_lattices = n_lattices
        self.force = np.ascontiguousarray(force, dtype=dtype)
        self.omega_plus = dtype.type(omega_plus)
        self.omega_minus = dtype.type(omega_minus)
        self.f = np.zeros((Q, int(ends[-1])), dtype=dtype)
        self.g = np.zeros_like(self.f)
        bytes_per_node = 2 * Q * dtype.itemsize + (Q - 1) * self.table.itemsize
        lattice_group = np.zeros(n_lattices, dtype=np.int64)
        filled = 0
        for lattice, nodes in enumerate(np.diff(ends, prepend=0)):
            if filled and filled + nodes * bytes_per_node > GROUP_BYTES:
                lattice_group[lattice:] += 1
                filled = 0
            filled += nodes * bytes_per_node
        chunk_group = lattice_group[self.chunk_lattice]  # non-decreasing
        self.groups = [
            slice(*np.searchsorted(chunk_group, [g, g + 1])) for g in range(lattice_group[-1] + 1)
        ]

    def advance(self, steps: int, active: np.ndarray) -> None:
        """Advance the lattices flagged in ``active`` (bool, shape (L,)) by ``steps``."""
        kernel = _stream_collide()
        for group in self.groups:
            chunks = (self.chunk_start[group], self.chunk_stop[group], self.chunk_lattice[group])
            source, target = self.f, self.g
            for _ in range(steps):
                kernel(
                    source, target, self.table, *chunks, active, self.force,
                    self.omega_plus, self.omega_minus,
                )  # fmt: skip
                source, target = target, source
        if steps % 2:
            self.f, self.g = self.g, self.f

    def population_sums(self) -> np.ndarray:
        """(L, Q) float64: sum over each lattice's fluid nodes of the stored populations."""
        sums = np.zeros((self.n_lattices, Q))
        np.add.at(sums, self.chunk_lattice, _chunk_sums(self.f, self.chunk_start, self.chunk_stop))
        return sums

    def velocities(self, lattices: np.ndarray) -> np.ndarray:
        """Velocity fields of some lattices, lattice units (rho_0 = 1, Guo forcing).

        Parameters
        ----------
        lattices : np.ndarray of int, shape (M,)
            Lattice indices.

        Returns
        -------
        np.ndarray of float32, shape (M, 3, Z, Y, X)
            ``u = sum_q f_q c_q - F / 2`` of the stored (post-collision) populations at
            each fluid node, components (x, y, z); zero on other nodes.
        """
        c = VELOCITIES.T.astype(np.float64)  # (3, Q)
        out = np.zeros((len(lattices), 3, *self.fluid.shape[1:]), dtype=np.float32)
        for i, lattice in enumerate(lattices):
            start, end = self.node_ranges[lattice]
            u = np.empty((3, end - start), dtype=np.float32)
            for lo in range(start, end, _VELOCITY_NODES):  # float64 copies of bounded size
                hi = min(lo + _VELOCITY_NODES, end)
                momentum = c @ self.f[:, lo:hi]  # (3, n)
                u[:, lo - start : hi - start] = momentum - 0.5 * self.force[lattice, :, None]
            out[i][:, self.fluid[lattice]] = u
        return out
