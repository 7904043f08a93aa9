"""Open-cell foam stand-in: solid struts along thickened Voronoi edges (periodic)."""

import math
from dataclasses import dataclass
from itertools import product

import numpy as np
from scipy.spatial import Voronoi

from pvae.core.errors import check_range
from pvae.data.microstructures.periodic import phase_within, segment_distance


@dataclass(frozen=True)
class FoamOptions:
    """Options of the ``foam`` family.

    Attributes
    ----------
    porosity : tuple of float
        Target porosity range (open-cell foams: 0.6-0.95).
    cell_size : tuple of float
        Range of the mean cell diameter in voxels; the number of Voronoi seeds is
        image volume / cell_size^3.
    """

    porosity: tuple[float, float] = (0.6, 0.95)
    cell_size: tuple[float, float] = (12.0, 20.0)

    def __post_init__(self):
        check_range("foam", "porosity", self.porosity, 0.0, 0.999)
        check_range("foam", "cell_size", self.cell_size, 1.0, 1e6)


def _voronoi_edges(points: np.ndarray, shape: tuple[int, int, int], margin: float) -> np.ndarray:
    """Edges of the periodic Voronoi tessellation of ``points``.

    Parameters
    ----------
    points : np.ndarray, shape (N, 3)
        Seed coordinates in voxels, (z, y, x), inside the box.
    shape : tuple of int
        (Z, Y, X) box shape.
    margin : float
        Periodic copies of seeds within this distance of the box are included
        (about two cell diameters make the cells of the box's own seeds exact).

    Returns
    -------
    np.ndarray, shape (E, 2, 3)
        Start and end point of every edge whose midpoint lies in the box (each
        periodic edge once), continuous voxel coordinates.
    """
    box = np.asarray(shape, dtype=float)
    offsets = sorted(product((-1, 0, 1), repeat=3), key=lambda o: o != (0, 0, 0))
    tiled = (points[None, :, :] + np.array(offsets)[:, None, :] * box).reshape(-1, 3)
    near = np.all((tiled > -margin) & (tiled < box + margin), axis=1)  # box's own seeds first
    tiled = tiled[near]
    voronoi = Voronoi(tiled)
    central = (voronoi.ridge_points < len(points)).any(axis=1)  # faces of the box's cells
    edges = set()
    for keep, ridge in zip(central, voronoi.ridge_vertices, strict=True):
        if keep and -1 not in ridge:
            edges.update(
                (min(a, b), max(a, b)) for a, b in zip(ridge, ridge[1:] + ridge[:1], strict=True)
            )
    ends = voronoi.vertices[np.array(sorted(edges), dtype=np.int64)]  # (E, 2, 3)
    mid = ends.mean(axis=1)
    return ends[np.all((mid >= 0) & (mid < box), axis=1)]


def generate(shape: tuple[int, int, int], rng: np.random.Generator, options: FoamOptions):
    """One open-cell foam sample.

    Voronoi seeds are uniform in the (periodic) box; the solid is every voxel within
    a strut radius of a Voronoi edge, the radius chosen so that the porosity equals
    the drawn target.

    Parameters
    ----------
    shape : tuple of int
        (Z, Y, X) image shape in voxels.
    rng : np.random.Generator
        Source of randomness (one per sample).
    options : FoamOptions

    Returns
    -------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore.
    params : dict
        ``target_porosity``, ``n_cells``, ``cell_size`` (voxels), ``strut_radius`` (voxels).
    """
    target = float(rng.uniform(*options.porosity))
    cell = float(rng.uniform(*options.cell_size))
    count = max(4, round(math.prod(shape) / cell**3))
    points = rng.random((count, 3)) * np.asarray(shape, dtype=float)
    edges = _voronoi_edges(points, shape, margin=2.0 * cell)
    solid, radius = phase_within(
        lambda cutoff: segment_distance(edges[:, 0], edges[:, 1], shape, cutoff),
        1.0 - target,
        cutoff=0.2 * cell + 1.0,
        largest=math.dist((0, 0, 0), shape),
    )
    params = {
        "target_porosity": target,
        "n_cells": count,
        "cell_size": cell,
        "strut_radius": radius,
    }
    return ~solid, params
