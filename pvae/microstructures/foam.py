"""Open-cell foam stand-in: solid struts along thickened Voronoi edges (periodic)."""

import math
from dataclasses import dataclass
from itertools import product

import numpy as np
from scipy.spatial import Voronoi

from pvae.microstructures.periodic import nearest_seed, phase_within, voxel_centres


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


def _strut_distance(edges: np.ndarray, shape: tuple[int, int, int], pad: int) -> np.ndarray:
    """Periodic distance (voxels) from every voxel centre to the nearest Voronoi edge.

    Voxels along each edge are marked with the edge's index and the periodic image
    they were wrapped from; the nearest marked voxel names the edge, and the exact
    point-to-segment distance to that edge's image is returned, shape (Z, Y, X).
    """
    box = np.asarray(shape)
    start, end = edges[:, 0], edges[:, 1]
    steps = np.maximum(2, np.ceil(2.0 * np.linalg.norm(end - start, axis=1)).astype(np.int64) + 1)
    edge_of = np.repeat(np.arange(len(edges)), steps)
    first_sample = np.repeat(np.cumsum(steps) - steps, steps)
    t = (np.arange(len(edge_of)) - first_sample) / (steps[edge_of] - 1)
    unwrapped = np.floor(start[edge_of] + t[:, None] * (end - start)[edge_of]).astype(np.int64)
    cells = unwrapped % box
    flat, first = np.unique(np.ravel_multi_index(tuple(cells.T), shape), return_index=True)
    owner = np.full(shape, -1, dtype=np.int64)
    owner.ravel()[flat] = edge_of[first]
    image_of = np.zeros((3, *shape), dtype=np.int64)  # periodic image each mark came from
    image_of.reshape(3, -1)[:, flat] = (unwrapped - cells)[first].T
    wrapped, shift = nearest_seed(owner >= 0, pad)
    nearest = owner[tuple(wrapped)]
    offset = shift - image_of[(slice(None), *wrapped)]
    a = start.T.astype(np.float32)[:, nearest]  # (3, Z, Y, X), contiguous per component
    ab = (end - start).T.astype(np.float32)[:, nearest]
    ap = voxel_centres(shape).astype(np.float32) - offset - a
    along = np.clip((ap * ab).sum(axis=0) / (ab * ab).sum(axis=0), 0.0, 1.0)
    return np.sqrt(((ap - along * ab) ** 2).sum(axis=0))


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
        lambda pad: _strut_distance(edges, shape, pad),
        1.0 - target,
        pad=math.ceil(0.25 * cell) + 2,
        largest=max(shape),
    )
    params = {
        "target_porosity": target,
        "n_cells": count,
        "cell_size": cell,
        "strut_radius": radius,
    }
    return ~solid, params
