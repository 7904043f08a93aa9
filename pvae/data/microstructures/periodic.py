"""Distances to continuous geometry on periodic voxel grids.

Voxel ``(i, j, k)`` covers the cube ``[i, i+1) x [j, j+1) x [k, k+1)`` of the
continuous box; its centre is at ``index + 0.5``. The seed-based generators place
continuous geometry (sphere centres, strut segments), measure the exact periodic
distance from every voxel centre to it, and threshold that distance at the order
statistic that gives the target volume fraction: exact to one voxel, with no ties.
"""

import math
from collections.abc import Callable

import numba
import numpy as np


@numba.njit(cache=True)
def _segment_distance(starts, ends, nz, ny, nx, cutoff):  # pragma: no cover - compiled
    out = np.full((nz, ny, nx), np.inf, dtype=np.float32)
    dims = (nz, ny, nx)
    for s in range(starts.shape[0]):
        a0, a1, a2 = starts[s, 0], starts[s, 1], starts[s, 2]
        b0, b1, b2 = ends[s, 0] - a0, ends[s, 1] - a1, ends[s, 2] - a2
        length2 = b0 * b0 + b1 * b1 + b2 * b2
        lo = np.empty(3, dtype=np.int64)
        hi = np.empty(3, dtype=np.int64)
        for d in range(3):
            low = min(starts[s, d], ends[s, d])
            high = max(starts[s, d], ends[s, d])
            lo[d] = math.floor(low - cutoff - 0.5)
            hi[d] = min(
                math.ceil(high + cutoff - 0.5), math.floor(low - cutoff - 0.5) + dims[d] - 1
            )
        for i in range(lo[0], hi[0] + 1):
            p0 = i + 0.5 - a0
            wi = i % nz
            for j in range(lo[1], hi[1] + 1):
                p1 = j + 0.5 - a1
                wj = j % ny
                for k in range(lo[2], hi[2] + 1):
                    p2 = k + 0.5 - a2
                    t = 0.0
                    if length2 > 0.0:
                        t = min(1.0, max(0.0, (p0 * b0 + p1 * b1 + p2 * b2) / length2))
                    d0, d1, d2 = p0 - t * b0, p1 - t * b1, p2 - t * b2
                    dist = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
                    wk = k % nx
                    if dist < out[wi, wj, wk]:
                        out[wi, wj, wk] = dist
    return out


def segment_distance(
    starts: np.ndarray, ends: np.ndarray, shape: tuple[int, int, int], cutoff: float
) -> np.ndarray:
    """Periodic distance from every voxel centre to the nearest of many segments.

    Parameters
    ----------
    starts, ends : np.ndarray, shape (S, 3)
        Segment end points in continuous voxel coordinates (z, y, x); a segment
        with ``start == end`` is a point (a sphere centre).
    shape : tuple of int
        (Z, Y, X) grid shape; the box is periodic.
    cutoff : float
        Distances are computed up to this value (voxels); farther voxels get ``inf``.

    Returns
    -------
    np.ndarray of float32, shape (Z, Y, X)
        Distance in voxels, exact where below ``cutoff``.
    """
    starts = np.ascontiguousarray(starts, dtype=np.float64)
    ends = np.ascontiguousarray(ends, dtype=np.float64)
    return _segment_distance(starts, ends, *shape, float(cutoff))


def threshold_for_fraction(distance: np.ndarray, fraction: float) -> float:
    """The distance d* such that ``distance <= d*`` covers ``fraction`` of the voxels."""
    flat = distance.ravel()
    k = int(np.clip(round(fraction * flat.size) - 1, 0, flat.size - 1))
    return float(np.partition(flat, k)[k])


def phase_within(
    distance_of: Callable[[float], np.ndarray], fraction: float, cutoff: float, largest: float
) -> tuple[np.ndarray, float]:
    """Voxels within the distance that gives a target volume fraction.

    Parameters
    ----------
    distance_of : callable
        ``distance_of(cutoff) -> np.ndarray (Z, Y, X)``: distance map exact below
        ``cutoff`` (``inf`` beyond), see :func:`segment_distance`.
    fraction : float
        Target volume fraction of the returned phase.
    cutoff : float
        Initial cutoff; doubled until the threshold lies below it.
    largest : float
        A cutoff that covers the whole grid (its diagonal).

    Returns
    -------
    phase : np.ndarray of bool, shape (Z, Y, X)
        ``distance <= threshold``.
    threshold : float
        The chosen distance in voxels.
    """
    while True:
        distance = distance_of(cutoff)
        threshold = threshold_for_fraction(distance, fraction)
        if threshold < cutoff or cutoff >= largest:
            return distance <= threshold, threshold
        cutoff *= 2
