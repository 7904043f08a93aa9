"""Poiseuille permeability of the straight pores of an image: an exact feature for channels.

A pore that runs straight through a periodic sample along axis i carries a flow a
local convolution sees only in pieces. Where the pore space is a set of such straight
pores, Stokes flow along i is fully developed: the velocity u(a, b) over the
cross-section solves the 2D Poisson problem

    -(d^2/da^2 + d^2/db^2) u = G / mu   in the through-pores,   u = 0 elsewhere,

and the superficial permeability is K_ii = mu <u> / G, the mean of u over the whole
cross-section (lattice units: voxel = 1). This module solves that problem on the
through-mask of each axis (the voxels whose whole line along i is pore). For a
structure of straight channels it is the Stokes permeability of the channels, walls
at the solid voxels' centres (about half a voxel inside the LBM's bounce-back
walls); with tortuous pores it is the lower bound set by the straight paths alone,
often zero.

Jacobi sweeps on a soft mask keep it differentiable, so inverse design's critic can
use it on soft (probability) images: a line's mask is the product of its voxels.
"""

import torch


def straight_pore_permeability(x: torch.Tensor, sweeps: int | None = None) -> torch.Tensor:
    """Stokes permeability of the straight through-pores along x, y, z.

    Parameters
    ----------
    x : torch.Tensor, shape (B, 1, D, H, W)
        Pore indicator, 1 = pore, 0 = solid (soft values in [0, 1] allowed), indexed
        (z, y, x), periodic.
    sweeps : int, optional
        Jacobi sweeps of the 2D Poisson problem (default: twice the largest side).
        Channels w voxels wide converge in about w^2 / 2 sweeps; wider open regions
        are underestimated, the same way for every image of a shape.

    Returns
    -------
    torch.Tensor, shape (B, 3)
        K_xx, K_yy, K_zz of the straight pores, lattice units (voxel^2), superficial
        (averaged over the whole cross-section), >= 0.
    """
    sweeps = 2 * max(x.shape[2:]) if sweeps is None else sweeps
    masks = [x.prod(dim=dim)[:, 0] for dim in (4, 3, 2)]  # along x, y, z: (B, A, C) each
    if len({m.shape for m in masks}) == 1:  # a cube: the three axes in one batch
        return _poisson_mean(torch.cat(masks), sweeps).view(3, -1).T
    return torch.stack([_poisson_mean(m, sweeps) for m in masks], dim=1)


def _poisson_mean(mask: torch.Tensor, sweeps: int) -> torch.Tensor:
    """Jacobi sweeps of -lap u = 1 where ``mask`` (N, A, C) is 1, u = 0 where it is 0,
    periodic; the mean of u per image, (N,)."""
    u = torch.zeros_like(mask)
    for _ in range(sweeps):
        u = mask * ((u.roll(1, 1) + u.roll(-1, 1) + u.roll(1, 2) + u.roll(-1, 2) + 1.0) / 4.0)
    return u.mean(dim=(1, 2))
