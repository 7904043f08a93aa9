"""Distances on periodic voxel grids, shared by the seed-based generators.

Voxel ``(i, j, k)`` covers the cube ``[i, i+1) x [j, j+1) x [k, k+1)`` of the
continuous box; its centre is at ``index + 0.5``. Generators place continuous
geometry (sphere centres, strut segments), mark the voxels it touches as seeds,
and measure the exact continuous distance to the geometry owning the nearest seed.
Thresholding that distance at an order statistic gives any target volume fraction
to within one voxel, with no ties.
"""

from collections.abc import Callable

import numpy as np
from scipy import ndimage


def nearest_seed(seeds: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest seed voxel of every voxel on a periodic grid.

    Parameters
    ----------
    seeds : np.ndarray of bool, shape (Z, Y, X)
        ``True`` at seed voxels (at least one).
    pad : int
        Wrap-around padding in voxels: nearest seeds within ``pad`` are exact.

    Returns
    -------
    wrapped : np.ndarray of int, shape (3, Z, Y, X)
        Index of the nearest seed inside the grid.
    shift : np.ndarray of int, shape (3, Z, Y, X)
        Periodic image offset (multiples of the grid size) of that seed, so that the
        seed's position relative to the voxel is ``wrapped + shift``.
    """
    shape = np.asarray(seeds.shape).reshape(3, 1, 1, 1)
    pad = int(min(pad, *seeds.shape))
    padded = np.pad(~seeds, pad, mode="wrap")
    indices = ndimage.distance_transform_edt(padded, return_distances=False, return_indices=True)
    inner = (slice(None), *(slice(pad, pad + n) for n in seeds.shape))
    unwrapped = indices[inner] - pad
    wrapped = np.mod(unwrapped, shape)
    return wrapped, unwrapped - wrapped


def voxel_centres(shape: tuple[int, int, int]) -> np.ndarray:
    """Continuous centre coordinates of every voxel, shape (3, Z, Y, X)."""
    return np.indices(shape, dtype=float) + 0.5


def threshold_for_fraction(distance: np.ndarray, fraction: float) -> float:
    """The distance d* such that ``distance <= d*`` covers ``fraction`` of the voxels."""
    flat = distance.ravel()
    k = int(np.clip(round(fraction * flat.size) - 1, 0, flat.size - 1))
    return float(np.partition(flat, k)[k])


def phase_within(
    distance_of: Callable[[int], np.ndarray], fraction: float, pad: int, largest: int
) -> tuple[np.ndarray, float]:
    """Voxels within the distance that gives a target volume fraction.

    Parameters
    ----------
    distance_of : callable
        ``distance_of(pad) -> np.ndarray (Z, Y, X)``: distance map exact up to ``pad``.
    fraction : float
        Target volume fraction of the returned phase.
    pad : int
        Initial padding; doubled until the threshold lies in the exact range.
    largest : int
        Largest useful padding (the largest image side).

    Returns
    -------
    phase : np.ndarray of bool, shape (Z, Y, X)
        ``distance <= threshold``.
    threshold : float
        The chosen distance in voxels.
    """
    while True:
        distance = distance_of(pad)
        threshold = threshold_for_fraction(distance, fraction)
        if threshold < pad - 1 or pad >= largest:
            return distance <= threshold, threshold
        pad *= 2
