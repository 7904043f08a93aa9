"""Steady velocity fields of the permeability solve, for looking at the flow.

Each forcing direction j of :func:`~pvae.physics.lbm.solver.permeability` is one Stokes
flow; its velocity at every voxel is what this module returns, from the same run loop
(the field is taken at the convergence check that gives the permeability column), so

    K[:, j] = nu / F * mean over ALL voxels of u   (superficial convention)

holds to float32 rounding. The velocity at a fluid node is ``u = sum_q f_q c_q - F / 2``
(Guo forcing, incompressible populations with rho_0 = 1), in lattice units; it is zero on
solid voxels and on pores that carry no flow along j (isolated or dead-end clusters are
made solid before solving, :func:`pvae.physics.connectivity.flow_paths`).

Images are boolean, ``True`` = pore, indexed (z, y, x); velocity components are in
(x, y, z) order, so ``velocity[0]`` is the component along array axis 2.
"""

from dataclasses import dataclass

import numpy as np
import torch

from pvae.core.errors import PvaeError
from pvae.physics.lbm.solver import LBMSettings, PermeabilityResult, solve_batch

AXIS_NAMES = ("x", "y", "z")


@dataclass
class FlowField:
    """The steady flow driven by a body force along one axis.

    Attributes
    ----------
    velocity : np.ndarray of float32, shape (3, Z, Y, X)
        Velocity components (x, y, z) per voxel (z, y, x), lattice units (voxel edges per
        time step); zero on solid voxels and on pores without flow.
    axis : int
        Forcing direction: 0, 1, 2 = x, y, z (x = array axis 2).
    k_column : np.ndarray, shape (3,)
        Column ``axis`` of the permeability tensor from this solve, (x, y, z) order,
        lattice units, in the settings' Darcy convention: equal to
        ``permeability(image, settings).k[:, axis]``.
    converged : bool
        True also where nothing was solved (no percolating path).
    steps : int
        Steps run (0 where the axis does not percolate).
    percolating : bool
        Whether the pore space carries flow along ``axis``; if not, ``velocity`` is zero.
    """

    velocity: np.ndarray
    axis: int
    k_column: np.ndarray
    converged: bool
    steps: int
    percolating: bool

    @property
    def name(self) -> str:
        """Forcing axis as a letter: ``"x"``, ``"y"`` or ``"z"``."""
        return AXIS_NAMES[self.axis]

    @property
    def magnitude(self) -> np.ndarray:
        """Speed |u| per voxel, float32 array of shape (Z, Y, X), lattice units."""
        return np.sqrt(np.sum(np.square(self.velocity, dtype=np.float64), axis=0)).astype(
            np.float32
        )


def _check_axes(axes) -> tuple[int, ...]:
    axes = tuple(int(a) for a in axes)
    if not axes or any(a not in (0, 1, 2) for a in axes) or len(set(axes)) != len(axes):
        raise PvaeError(f"flow field axes must be distinct values of 0, 1, 2 (x, y, z): {axes}")
    return axes


def _solve(image, settings, voxel_size, device, axes):
    image = np.asarray(image)
    if image.ndim != 3:
        raise PvaeError(f"flow fields need a (Z, Y, X) image, got shape {image.shape}")
    (result,), velocity = solve_batch(
        image[None], settings, voxel_size=voxel_size, device=device, axes=axes, velocity=True
    )
    fields = [
        FlowField(
            velocity=velocity[0, axis],
            axis=axis,
            k_column=result.k[:, axis].copy(),
            converged=bool(result.converged[axis]),
            steps=int(result.steps[axis]),
            percolating=bool(result.percolating[axis]),
        )
        for axis in axes
    ]
    return result, fields


def flow_fields(
    image: np.ndarray,
    settings: LBMSettings = LBMSettings(),  # noqa: B008 - frozen, immutable default
    axes: tuple[int, ...] = (0, 1, 2),
    device: str | torch.device = "cpu",
) -> list[FlowField]:
    """Steady velocity fields of a periodic voxel image, one per forcing axis.

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore; axes (z, y, x); treated as periodic on all sides.
    settings : LBMSettings
        Numerical settings, as for :func:`~pvae.physics.lbm.solver.permeability`.
    axes : tuple of int
        Forcing directions to solve: 0, 1, 2 = x, y, z (x = array axis 2).
    device : str or torch.device
        "cpu" or a CUDA device.

    Returns
    -------
    list of FlowField
        One per entry of ``axes``, in that order. A direction without a percolating path
        gets a zero field, ``converged`` True and ``steps`` 0.

    Raises
    ------
    PvaeError
        If the image is fully solid or fully pore, or the axes/settings/device do not fit.
    """
    return _solve(image, settings, None, device, _check_axes(axes))[1]


def permeability_with_flow(
    image: np.ndarray,
    settings: LBMSettings = LBMSettings(),  # noqa: B008 - frozen, immutable default
    *,
    voxel_size: float | None = None,
    device: str | torch.device = "cpu",
) -> tuple[PermeabilityResult, list[FlowField]]:
    """The permeability tensor and the flow fields of its three solves, from one run.

    Parameters
    ----------
    image, settings, voxel_size, device
        As in :func:`~pvae.physics.lbm.solver.permeability`.

    Returns
    -------
    result : PermeabilityResult
        Equal to ``permeability(image, settings, voxel_size=voxel_size)``.
    fields : list of FlowField
        Forcing along x, y, z (see :func:`flow_fields`).
    """
    return _solve(image, settings, voxel_size, device, (0, 1, 2))
