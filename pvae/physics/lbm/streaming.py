"""Pull streaming with periodic boundaries and halfway bounce-back on solid voxels.

A fluid node x receives population q from its neighbour ``x - c_q`` (wrapped periodically
on every side). When that neighbour is solid, the population that left x along ``-c_q``
in the same step comes back reversed instead: ``f_q(x, t+1) = f*_{-q}(x, t)``. This is
halfway bounce-back, which puts the no-slip wall on the voxel faces, half a lattice
spacing from the fluid node, so a voxel image is used as it is.

Two forms of the same rule are given: :func:`pull_stream` on dense torch tensors (any
device), and :func:`aa_sources`, the table of the sparse CPU kernels, which stream in
place (:mod:`~pvae.physics.lbm.kernel_source`).
"""

import numpy as np
import torch

from pvae.physics.lbm.lattice import ARRAY_SHIFTS, OPPOSITE, Q


def pull_stream(f: torch.Tensor, fluid: torch.Tensor) -> list[torch.Tensor]:
    """Stream post-collision populations on dense lattices.

    Parameters
    ----------
    f : torch.Tensor, shape (L, Q, Z, Y, X)
        Post-collision populations of L independent periodic lattices, array axes
        (z, y, x).
    fluid : torch.Tensor of bool, shape (L, Z, Y, X)
        True where the node is fluid.

    Returns
    -------
    list of Q torch.Tensor, each of shape (L, Z, Y, X)
        Incoming populations; values on solid nodes are meaningless.
    """
    dims = (1, 2, 3)
    fin = [f[:, 0]]
    for q in range(1, Q):
        from_neighbour = torch.roll(f[:, q], ARRAY_SHIFTS[q], dims)
        neighbour_fluid = torch.roll(fluid, ARRAY_SHIFTS[q], dims)
        fin.append(torch.where(neighbour_fluid, from_neighbour, f[:, int(OPPOSITE[q])]))
    return fin


def aa_sources(fluid: np.ndarray) -> np.ndarray:
    """Table of the sparse kernels' B step (:mod:`~pvae.physics.lbm.kernel_source`).

    The fluid nodes of all lattices are numbered in C order of ``fluid`` (lattice, z, y, x);
    populations are stored in place as an array ``f`` of shape ``(Q, N)``. In a B step,
    node n reads incoming population q from ``f.ravel()[table[q - 1, n]]`` and writes its
    post-collision population ``OPPOSITE[q]`` back to the same place (q = 1..Q-1; q = 0
    does not move).

    Parameters
    ----------
    fluid : np.ndarray of bool, shape (L, Z, Y, X)
        True where the node is fluid; axes (lattice, z, y, x).

    Returns
    -------
    np.ndarray of int32 (int64 when Q * N >= 2**31), shape (Q - 1, N)
        Flat indices into ``f``: ``OPPOSITE[q] * N + m`` for the upstream neighbour m (at
        ``x - c_q``), or ``q * N + n`` (bounce-back) when that neighbour is solid.
    """
    n_fluid = int(fluid.sum())
    index_dtype = np.int32 if Q * n_fluid < 2**31 else np.int64
    node = np.full(fluid.shape, -1, dtype=np.int64)
    node[fluid] = np.arange(n_fluid)
    own = np.arange(n_fluid)
    table = np.empty((Q - 1, n_fluid), dtype=index_dtype)
    for q in range(1, Q):
        neighbour = np.roll(node, ARRAY_SHIFTS[q], axis=(1, 2, 3))[fluid]
        upstream = OPPOSITE[q] * n_fluid + neighbour
        table[q - 1] = np.where(neighbour >= 0, upstream, q * n_fluid + own)
    return table
