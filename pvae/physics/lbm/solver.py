"""Permeability tensor of periodic voxel images by the lattice Boltzmann method.

Images are boolean arrays, ``True`` = pore (fluid), indexed (z, y, x); tensor components
are in (x, y, z) order, so ``K[0, 0]`` (K_xx) is flow along array axis 2.

Method: D3Q19, TRT collision (magic Lambda = 3/16; BGK optional), Guo forcing, halfway
bounce-back on solid voxels, periodic boundaries on all sides. A uniform body force F along
direction j drives the flow; at steady state

    K[:, j] = nu <u> / F

with ``nu = (tau - 1/2) / 3`` and ``<u>`` the superficial velocity (sum of the velocity over
fluid nodes divided by the number of ALL voxels) -- or, with ``convention="pore"``, the
velocity averaged over pore voxels of the image, ``K_pore = K / porosity``.

Before solving, pore clusters that cannot carry flow along j are made solid
(:func:`pvae.physics.connectivity.flow_paths`); a direction without any such cluster gets
``K[:, j] = 0`` exactly and no simulation. All (sample, direction) pairs of a batch become
independent lattices of ONE simulation. Every ``check_every`` steps the mean flux vector
is checked; the flow approaches its steady state geometrically, so the ratio q of the
last two changes d between checks extrapolates the error still to go,
``|d| q / (1 - q)``. A lattice is converged when, for every component (the transverse
ones give the off-diagonal K), that estimate and the last change are both below ``tol``
relative to the flux along the force (an oscillating approach, q < 0, counts as q = 0;
an approach along the force slower than :data:`RATIO_LIMIT` per check never converges).
This stops where the remaining error is small, whatever the relaxation time of the
structure: a bound on the change alone (``convergence="change"``, the rule of earlier
versions, kept to reproduce data labelled with it) stops too late on small images and too
early on large ones, whose approach is slower. A lattice's result is taken at the check
that converges it, so a batch reproduces one-by-one runs.

The velocity fields of the same run (taken at the check that gives each column) are
:func:`pvae.physics.lbm.flow_field.flow_fields`.

Backends: on CPU a sparse in-place kernel (:mod:`~pvae.physics.lbm.sparse_cpu`), compiled
as C where a C compiler is found (``backend="c"``), else numba (``backend="numba"``);
elsewhere dense torch tensors (:mod:`~pvae.physics.lbm.dense_torch`), compiled with
``torch.compile`` on CUDA. ``backend="torch"`` runs the dense path on CPU too.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from pvae.core.errors import PvaeError
from pvae.physics.connectivity import flow_paths
from pvae.physics.lbm.collision import kinematic_viscosity, relaxation_rates
from pvae.physics.lbm.dense_torch import DenseTorchLattices
from pvae.physics.lbm.lattice import VELOCITIES
from pvae.physics.lbm.sparse_cpu import SparseCpuLattices

_DTYPES = {"float32": (np.float32, torch.float32), "float64": (np.float64, torch.float64)}
_CONVENTIONS = ("superficial", "pore")
_CONVERGENCE = ("extrapolated", "change")
_BACKENDS = ("auto", "c", "numba", "torch")


@dataclass(frozen=True)
class LBMSettings:
    """Numerical settings of a permeability computation (lattice units throughout).

    Attributes
    ----------
    collision : {"trt", "bgk"}
        TRT (K independent of ``tau``) or BGK (to reproduce data labelled with BGK).
    tau : float
        Relaxation time, > 0.5; viscosity ``nu = (tau - 1/2) / 3``.
    magic : float
        TRT magic parameter Lambda; 3/16 makes halfway bounce-back exact for Poiseuille flow.
    force : float
        Body-force density driving the flow; small enough for Stokes flow (Mach << 1).
    tol : float
        Convergence: estimated remaining relative error of the mean flux, and its
        relative change between the last two checks (module docstring;
        ``bench/results/lbm.md`` measures the default against tighter runs).
    convergence : {"extrapolated", "change"}
        The test ``tol`` bounds: the remaining error extrapolated from the last three
        checks, or (earlier versions' rule) only the relative change of the flux along
        the force between the last two checks.
    check_every : int
        Steps between convergence checks.
    max_steps : int
        Step cap per direction; a direction stopped by it reports ``converged = False``.
    dtype : {"float32", "float64"}
        Precision of the populations.
    convention : {"superficial", "pore"}
        Darcy velocity: flux over all voxels (default) or averaged over pore voxels.
    backend : {"auto", "c", "numba", "torch"}
        ``"auto"``: on CPU the C kernel, or the numba one (with a warning) where no C
        compiler builds it; dense torch elsewhere. All give the same K to float rounding.
    compile : bool or None
        ``torch.compile`` the dense torch step; None = only on CUDA.
    """

    collision: Literal["trt", "bgk"] = "trt"
    tau: float = 1.0
    magic: float = 3 / 16
    force: float = 1e-5
    tol: float = 1e-3
    convergence: Literal["extrapolated", "change"] = "extrapolated"
    check_every: int = 50
    max_steps: int = 50_000
    dtype: Literal["float32", "float64"] = "float32"
    convention: Literal["superficial", "pore"] = "superficial"
    backend: Literal["auto", "c", "numba", "torch"] = "auto"
    compile: bool | None = None

    def __post_init__(self) -> None:
        relaxation_rates(self.collision, self.tau, self.magic)  # validates all three
        checks = {
            "force": self.force > 0,
            "tol": self.tol > 0,
            "convergence": self.convergence in _CONVERGENCE,
            "check_every": self.check_every >= 1,
            "max_steps": self.max_steps >= 1,
            "dtype": self.dtype in _DTYPES,
            "convention": self.convention in _CONVENTIONS,
            "backend": self.backend in _BACKENDS,
        }
        for name, ok in checks.items():
            if not ok:
                raise PvaeError(f"invalid LBM setting {name}={getattr(self, name)!r}")


@dataclass
class PermeabilityResult:
    """Permeability tensor of one image.

    Attributes
    ----------
    k : np.ndarray, shape (3, 3)
        Permeability in lattice units (voxel edge = 1); rows/columns in (x, y, z) order,
        column j from the force along j.
    converged : np.ndarray of bool, shape (3,)
        Per forcing direction; True for non-percolating directions (nothing to solve).
    steps : np.ndarray of int, shape (3,)
        Steps run per forcing direction (0 where it does not percolate).
    percolating : np.ndarray of bool, shape (3,)
        Whether the periodic pore space carries flow along x, y, z.
    porosity : float
        Pore voxels / all voxels of the image (isolated pores included).
    convention : str
        "superficial" or "pore" (see :class:`LBMSettings`).
    voxel_size : float or None
        Voxel edge in metres, when given.
    k_m2 : np.ndarray or None, shape (3, 3)
        ``k * voxel_size**2`` in m^2, when ``voxel_size`` is given.
    """

    k: np.ndarray
    converged: np.ndarray
    steps: np.ndarray
    percolating: np.ndarray
    porosity: float
    convention: str
    voxel_size: float | None = None
    k_m2: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        if self.voxel_size is not None and self.k_m2 is None:
            self.k_m2 = self.k * self.voxel_size**2

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (nested lists, plain floats and bools)."""
        return {
            "k": self.k.tolist(),
            "k_m2": None if self.k_m2 is None else self.k_m2.tolist(),
            "converged": self.converged.tolist(),
            "steps": self.steps.tolist(),
            "percolating": self.percolating.tolist(),
            "porosity": self.porosity,
            "convention": self.convention,
            "voxel_size": self.voxel_size,
        }


def permeability(
    image: np.ndarray,
    settings: LBMSettings = LBMSettings(),  # noqa: B008 - frozen, immutable default
    *,
    voxel_size: float | None = None,
    device: str | torch.device = "cpu",
) -> PermeabilityResult:
    """Full permeability tensor of one periodic voxel image.

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore; axes (z, y, x); K components in (x, y, z) order (K_xx = flow along
        axis 2). Treated as periodic on all sides.
    settings : LBMSettings
        Numerical settings.
    voxel_size : float, optional
        Voxel edge in metres; adds ``k_m2`` to the result.
    device : str or torch.device
        "cpu" or a CUDA device.

    Returns
    -------
    PermeabilityResult

    Raises
    ------
    PvaeError
        If the image is fully solid or fully pore, or the settings/device do not fit.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise PvaeError(f"permeability expects a (Z, Y, X) image, got shape {image.shape}")
    return permeability_batch(image[None], settings, voxel_size=voxel_size, device=device)[0]


def permeability_batch(
    images: np.ndarray,
    settings: LBMSettings = LBMSettings(),  # noqa: B008 - frozen, immutable default
    *,
    voxel_size: float | None = None,
    device: str | torch.device = "cpu",
) -> list[PermeabilityResult]:
    """Permeability tensors of many images of one shape, solved in one simulation.

    Parameters
    ----------
    images : np.ndarray of bool, shape (B, Z, Y, X)
        ``True`` = pore; axes (sample, z, y, x); K components in (x, y, z) order.
    settings, voxel_size, device
        As in :func:`permeability`.

    Returns
    -------
    list of PermeabilityResult
        One per image, equal to :func:`permeability` of that image alone.
    """
    return solve_batch(images, settings, voxel_size=voxel_size, device=device)[0]


def solve_batch(
    images: np.ndarray,
    settings: LBMSettings,
    *,
    voxel_size: float | None = None,
    device: str | torch.device = "cpu",
    axes: tuple[int, ...] = (0, 1, 2),
    velocity: bool = False,
) -> tuple[list[PermeabilityResult], np.ndarray | None]:
    """:func:`permeability_batch`, optionally for some forcing axes only and with the
    velocity fields of the solve (what :mod:`~pvae.physics.lbm.flow_field` builds on).

    Parameters
    ----------
    images, settings, voxel_size, device
        As in :func:`permeability_batch`.
    axes : tuple of int
        Forcing directions to solve (0, 1, 2 = x, y, z); the columns of the others stay
        0 with ``converged`` False and ``steps`` 0.
    velocity : bool
        Also return the steady velocity fields.

    Returns
    -------
    results : list of PermeabilityResult
        One per image.
    velocity : np.ndarray of float32, shape (B, 3, 3, Z, Y, X), or None
        ``velocity[b, j]`` is the field of image b forced along j: components (x, y, z),
        lattice units, taken when that direction converged (or at the step cap); zero on
        solid voxels, on pores that carry no flow along j, and for directions not solved
        or not percolating. None unless ``velocity``.
    """
    images = _check_images(images)
    device = torch.device(device)
    paths = np.stack([flow_paths(image) for image in images])  # (B, 3, Z, Y, X)
    percolating = paths.any(axis=(2, 3, 4))  # (B, 3)
    wanted = np.isin(np.arange(3), axes)
    lattices = np.argwhere(percolating & wanted)  # (L, 2): sample, direction
    k = np.zeros((len(images), 3, 3))
    converged = ~percolating & wanted
    steps = np.zeros((len(images), 3), dtype=np.int64)
    fields = np.zeros((len(images), 3, 3, *images.shape[1:]), np.float32) if velocity else None
    if len(lattices):
        sample, direction = lattices[:, 0], lattices[:, 1]
        solution = _solve(paths[sample, direction], direction, settings, device, velocity)
        k[sample, :, direction] = solution.columns
        converged[sample, direction] = solution.converged
        steps[sample, direction] = solution.steps
        if velocity:
            fields[sample, direction] = solution.velocity
    porosities = images.mean(axis=(1, 2, 3))
    if settings.convention == "pore":
        k /= porosities[:, None, None]
    results = [
        PermeabilityResult(
            k=k[b],
            converged=converged[b],
            steps=steps[b],
            percolating=percolating[b],
            porosity=float(porosities[b]),
            convention=settings.convention,
            voxel_size=voxel_size,
        )  # fmt: skip
        for b in range(len(images))
    ]
    return results, fields


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.bool_:
        raise PvaeError(f"images must be boolean (True = pore), got dtype {images.dtype}")
    if images.ndim != 4 or 0 in images.shape:
        raise PvaeError(f"images must have shape (B, Z, Y, X), got {images.shape}")
    for b, image in enumerate(images):
        if not image.any():
            raise PvaeError(f"sample {b} is fully solid: no pore space to flow through")
        if image.all():
            raise PvaeError(f"sample {b} has no solid voxel: permeability is unbounded")
    return images


@dataclass
class _Solution:
    """What :func:`_solve` returns for L lattices.

    Attributes
    ----------
    columns : np.ndarray, shape (L, 3)
        Superficial permeability column of each lattice, lattice units.
    converged : np.ndarray of bool, shape (L,)
    steps : np.ndarray of int, shape (L,)
    velocity : np.ndarray of float32, shape (L, 3, Z, Y, X), or None
        Velocity (x, y, z) of each lattice at the check its column was taken, lattice
        units, zero on non-fluid nodes; None unless asked for.
    """

    columns: np.ndarray
    converged: np.ndarray
    steps: np.ndarray
    velocity: np.ndarray | None


def _lattices(fluid: np.ndarray, force: np.ndarray, settings: LBMSettings, device: torch.device):
    """The backend state of L lattices (:class:`SparseCpuLattices` or
    :class:`DenseTorchLattices`) for these settings and device."""
    omega_plus, omega_minus = relaxation_rates(settings.collision, settings.tau, settings.magic)
    np_dtype, torch_dtype = _DTYPES[settings.dtype]
    backend = settings.backend
    if backend == "torch" or (backend == "auto" and device.type != "cpu"):
        compile_step = device.type == "cuda" if settings.compile is None else settings.compile
        return DenseTorchLattices(
            fluid, force, omega_plus, omega_minus, torch_dtype, device, compile_step
        )
    if device.type != "cpu":
        raise PvaeError(f"the {backend} backend runs on the CPU only, not on {device}")
    return SparseCpuLattices(
        fluid, force, omega_plus, omega_minus, np.dtype(np_dtype), kernel=backend
    )


def _solve(
    fluid: np.ndarray,
    direction: np.ndarray,
    settings: LBMSettings,
    device: torch.device,
    velocity: bool = False,
) -> _Solution:
    """Run L lattices to convergence.

    Parameters
    ----------
    fluid : np.ndarray of bool, shape (L, Z, Y, X)
        Flow-carrying pore space of each lattice.
    direction : np.ndarray of int, shape (L,)
        Forcing direction of each lattice (0, 1, 2 = x, y, z).
    settings : LBMSettings
    device : torch.device
    velocity : bool
        Also keep each lattice's velocity field from the moment its column is taken.

    Returns
    -------
    _Solution
    """
    n_lattices = len(fluid)
    force = np.zeros((n_lattices, 3))
    force[np.arange(n_lattices), direction] = settings.force
    state = _lattices(fluid, force, settings, device)

    n_fluid = fluid.reshape(n_lattices, -1).sum(axis=1)
    scale = kinematic_viscosity(settings.tau) / (settings.force * math.prod(fluid.shape[1:]))
    columns = np.zeros((n_lattices, 3))
    converged = np.zeros(n_lattices, dtype=bool)
    steps = np.zeros(n_lattices, dtype=np.int64)
    fields = np.zeros((n_lattices, 3, *fluid.shape[1:]), np.float32) if velocity else None
    previous = np.full((n_lattices, 3), np.nan)  # the flux at the last check, and the one before
    before = np.full((n_lattices, 3), np.nan)
    done = 0
    while done < settings.max_steps and not converged.all():
        chunk = min(settings.check_every, settings.max_steps - done)
        state.advance(chunk, ~converged)
        done += chunk
        # velocity = post-collision momentum - F/2 at every fluid node (Guo forcing)
        flux = state.population_sums() @ VELOCITIES - 0.5 * n_fluid[:, None] * force  # (L, 3)
        if settings.convergence == "change":
            remaining = _last_change(previous, flux, direction)
        else:
            remaining = _remaining_error(before, previous, flux, direction)
        before, previous = previous, flux
        running = ~converged
        columns[running] = flux[running] * scale
        steps[running] = done
        converged |= running & (remaining < settings.tol)
        if velocity:  # the field of the same moment as the column, once per lattice
            final = running & (converged | (done >= settings.max_steps))
            if final.any():
                fields[final] = state.velocities(np.flatnonzero(final))
    return _Solution(columns, converged, steps, fields)


RATIO_LIMIT = 0.95  # a slower approach than this per check is never called converged


def _remaining_error(
    before: np.ndarray, previous: np.ndarray, now: np.ndarray, direction: np.ndarray
) -> np.ndarray:
    """Error still to go of fluxes approaching steady state geometrically.

    Parameters
    ----------
    before, previous, now : np.ndarray, shape (L, 3)
        Each lattice's flux vector at three consecutive checks (NaN before there are
        three).
    direction : np.ndarray of int, shape (L,)
        The component along the force; errors are relative to its flux.

    Returns
    -------
    np.ndarray, shape (L,)
        The largest over components of ``max(|d|, |d| q / (1 - q))`` relative to the
        flux along the force, with d = now - previous and q = d / (previous - before)
        clipped to [0, :data:`RATIO_LIMIT`]; inf where a check is missing or the flux
        along the force approaches slower than ``RATIO_LIMIT`` per check. The
        transverse components (the off-diagonal K) count too; their q is only capped,
        since near zero their changes are rounding noise.
    """
    change = now - previous
    rows = np.arange(len(now))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(change == 0, 0.0, np.clip(change / (previous - before), 0.0, None))
        capped = np.minimum(ratio, RATIO_LIMIT)
        left = np.abs(change) * np.maximum(1.0, capped / (1.0 - capped))
        relative = left / np.maximum(np.abs(now[rows, direction]), np.finfo(float).tiny)[:, None]
    slow = ~(ratio[rows, direction] < RATIO_LIMIT)  # NaN ratio: too few checks
    relative = np.where(np.isfinite(relative), relative, np.inf).max(axis=1)
    return np.where(slow, np.inf, relative)


def _last_change(previous: np.ndarray, now: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Relative change of the flux along the force since the last check, shape (L,)
    (``convergence="change"``; NaN at the first check), from flux vectors (L, 3)."""
    along = now[np.arange(len(now)), direction]
    change = np.abs(along - previous[np.arange(len(now)), direction])
    return change / np.maximum(np.abs(along), np.finfo(float).tiny)
