"""Structure descriptors: symmetry-invariant statistics of periodic voxel images.

One descriptor space serves every question of the form "is this structure like those":
the surrogate's applicability domain (:mod:`pvae.surrogate.domain`) and the realism and
coverage of generated structures (:mod:`pvae.vae.generation`).

Descriptors of an image (pore = ``True``), :data:`FEATURES`:

- porosity;
- specific surface per axis: the share of voxel faces normal to that axis that
  separate pore from solid (1/voxel);
- the normalised two-point autocorrelation per axis at lags of :data:`LAGS` voxels,
  ``(S2(r) - phi^2) / (phi - phi^2)`` with ``S2(r)`` the probability that two voxels
  ``r`` apart are both pore (periodic); 1 at r = 0, 0 for an uncorrelated medium.

The per-axis values of each quantity are sorted, so the descriptors are invariant
under the 48 cube symmetries.

The applicability domain adds statistics of shape and topology that these miss
(:data:`DOMAIN_FEATURES`, ``extended=True``):

- the Euler characteristic per voxel of the pore space and of the solid (each the
  union of its closed voxel cubes, periodic): isolated pores and grains count +1,
  tunnels (throats, struts) -1;
- pore and solid sizes: mean, median and 90th percentile over each phase's voxels of
  the Euclidean distance to the other phase (periodic, capped at :data:`SIZE_CAP`
  voxels), the local half-width of pores and struts;
- the lineal-path function per axis, sorted: log10 of the share of segments of
  :data:`LINEAL` voxels, and of whole lines through the sample, that lie wholly in
  the pore space (straight paths: channels), offset by :data:`SHARE_FLOOR`. On a log
  scale, no straight path along an axis is far from a few percent of them.
"""

import numpy as np
from scipy import ndimage

from pvae.core.errors import PvaeError

LAGS = (1, 2, 4, 8)
FEATURES = (
    ("porosity",)
    + tuple(f"surface_{rank}" for rank in ("min", "mid", "max"))
    + tuple(f"s2_lag{lag}_{rank}" for lag in LAGS for rank in ("min", "mid", "max"))
)
SIZE_CAP = 8  # voxels: pore and solid sizes are exact up to this distance
LINEAL = 8  # voxels: segment length of the lineal-path share
SHARE_FLOOR = 1e-3  # added to lineal-path shares before their log10
_RANKS = ("min", "mid", "max")
DOMAIN_FEATURES = (
    FEATURES
    + ("euler_pore", "euler_solid")
    + tuple(f"{phase}_size_{q}" for phase in ("pore", "solid") for q in ("mean", "p50", "p90"))
    + tuple(f"log_lineal{LINEAL}_{rank}" for rank in _RANKS)
    + tuple(f"log_through_{rank}" for rank in _RANKS)
)
CHUNK = 256  # images per descriptor pass: bounded memory at 64^3 and up


def descriptors(images: np.ndarray, extended: bool = False) -> np.ndarray:
    """Symmetry-invariant image statistics (see the module docstring).

    Parameters
    ----------
    images : np.ndarray of bool, shape (N, Z, Y, X)
        ``True`` = pore; periodic.
    extended : bool
        Also the domain's shape and topology statistics.

    Returns
    -------
    np.ndarray of float64, shape (N, F)
        F = len(FEATURES): porosity, sorted specific surfaces (1/voxel), sorted
        normalised two-point autocorrelations per lag (dimensionless); with
        ``extended`` F = len(DOMAIN_FEATURES), followed by Euler characteristics per
        voxel, pore and solid sizes (voxels) and log10 of sorted lineal-path shares.
    """
    images = np.asarray(images, dtype=bool)
    if images.ndim != 4:
        raise PvaeError(f"descriptors: expected images (N, Z, Y, X), got shape {images.shape}")
    width = len(DOMAIN_FEATURES if extended else FEATURES)
    if not len(images):
        return np.zeros((0, width))
    parts = []
    for start in range(0, len(images), CHUNK):
        chunk = images[start : start + CHUNK]
        part = [_descriptors(chunk)]
        if extended:
            lineal = np.concatenate([lineal_path(chunk, LINEAL), lineal_path(chunk, None)], 1)
            part += [euler_density(chunk)[:, None], euler_density(~chunk)[:, None],
                     phase_sizes(chunk), phase_sizes(~chunk),
                     np.log10(lineal + SHARE_FLOOR)]  # fmt: skip
        parts.append(np.concatenate(part, axis=1))
    return np.concatenate(parts)


def euler_density(images: np.ndarray) -> np.ndarray:
    """Euler characteristic per voxel of the union of the ``True`` voxels' closed cubes.

    On the periodic lattice every vertex, edge and face belongs to one voxel index, so
    chi = vertices - edges + faces - cubes counts each cell once: a cell is in the union
    when any of the 8, 4 or 2 voxels around it is. Images (N, Z, Y, X) -> (N,).
    """

    def touched(axes) -> np.ndarray:  # cells of the union, one per voxel index
        out = images.copy()
        for mask in range(1, 2 ** len(axes)):
            shifted = images
            for bit, axis in enumerate(axes):
                if mask >> bit & 1:
                    shifted = np.roll(shifted, 1, axis=axis)
            out |= shifted
        return out.sum(axis=(1, 2, 3))

    cubes = images.sum(axis=(1, 2, 3))
    faces = sum(touched([a]) for a in (1, 2, 3))
    edges = sum(touched(pair) for pair in ((2, 3), (1, 3), (1, 2)))
    vertices = touched([1, 2, 3])
    return (vertices - edges + faces - cubes) / images[0].size


def phase_sizes(images: np.ndarray) -> np.ndarray:
    """Mean, median and 90th percentile of the distance from ``True`` voxels to the
    nearest ``False`` voxel (periodic, Euclidean, voxels, capped at :data:`SIZE_CAP`).

    Images (N, Z, Y, X) -> (N, 3); zeros for an image without ``True`` voxels.
    """
    out = np.zeros((len(images), 3))
    for i, image in enumerate(images):
        pad = min(SIZE_CAP, *image.shape)
        tiled = np.pad(image, pad, mode="wrap")  # periodic copies within reach of the cap
        inner = (slice(pad, -pad),) * 3
        distance = np.minimum(ndimage.distance_transform_edt(tiled)[inner], SIZE_CAP)
        if image.any():
            d = distance[image]
            out[i] = d.mean(), *np.quantile(d, (0.5, 0.9))
    return out


def lineal_path(images: np.ndarray, length: int | None) -> np.ndarray:
    """Share of segments of ``length`` voxels (None: whole lines) wholly in ``True``
    voxels, per axis (periodic), sorted. Images (N, Z, Y, X) -> (N, 3)."""
    shares = []
    for axis in (3, 2, 1):
        n = images.shape[axis] if length is None else min(length, images.shape[axis])
        run, reach = images.copy(), 1
        while reach < n:  # run holds segments of `reach` voxels; double it, then top up
            step = min(reach, n - reach)
            run &= np.roll(run, step, axis=axis)
            reach += step
        shares.append(run.mean(axis=(1, 2, 3)))
    return np.sort(np.stack(shares, axis=1), axis=1)


def _descriptors(images: np.ndarray) -> np.ndarray:
    phi = images.mean(axis=(1, 2, 3))  # (N,)
    variance = np.maximum(phi - phi**2, 1e-12)
    surface, s2 = [], []
    for axis in (3, 2, 1):  # x, y, z
        surface.append((images != np.roll(images, 1, axis=axis)).mean(axis=(1, 2, 3)))
        s2.append(
            [((images & np.roll(images, lag, axis=axis)).mean(axis=(1, 2, 3)) - phi**2) / variance
             for lag in LAGS]
        )  # fmt: skip
    surface = np.sort(np.stack(surface, axis=1), axis=1)  # (N, 3)
    s2 = np.sort(np.asarray(s2).transpose(2, 1, 0), axis=2)  # (N, lags, 3 axes)
    return np.concatenate([phi[:, None], surface, s2.reshape(len(images), -1)], axis=1)


def store_descriptors(store, rows, extended: bool = False) -> np.ndarray:
    """:func:`descriptors` of some rows of a :class:`~pvae.data.store.reader.VoxelStore`,
    read in chunks, (len(rows), F)."""
    rows = np.asarray(rows, dtype=int)
    parts = [descriptors(store.images(rows[i : i + CHUNK]), extended)
             for i in range(0, len(rows), CHUNK)]  # fmt: skip
    return np.concatenate(parts) if parts else descriptors(np.zeros((0, 1, 1, 1), bool), extended)


def knn_mean_distance(points: np.ndarray, reference: np.ndarray, k: int,
                      skip_self: bool = False) -> np.ndarray:  # fmt: skip
    """Mean Euclidean distance of each point to its ``k`` nearest reference points.

    Parameters
    ----------
    points : np.ndarray, shape (N, F)
    reference : np.ndarray, shape (R, F)
    k : int
    skip_self : bool
        ``points`` is ``reference``: leave each point's zero distance to itself out.

    Returns
    -------
    np.ndarray, shape (N,)
    """
    return nearest(points, reference, k, skip_self)[0]


def nearest(points: np.ndarray, reference: np.ndarray, k: int,
            skip_self: bool = False) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The ``k`` nearest reference points of each point: their mean Euclidean distance,
    (N,), and their indices into ``reference``, (N, k); see :func:`knn_mean_distance`."""
    mean, index = np.empty(len(points)), np.empty((len(points), k), dtype=int)
    for start in range(0, len(points), 1024):
        block = points[start : start + 1024]
        d2 = ((block[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2)  # (B, R)
        order = np.argsort(d2, axis=1)[:, int(skip_self) : k + int(skip_self)]
        mean[start : start + len(block)] = np.sqrt(np.take_along_axis(d2, order, 1)).mean(1)
        index[start : start + len(block)] = order
    return mean, index
