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
"""

import numpy as np

from pvae.core.errors import PvaeError

LAGS = (1, 2, 4, 8)
FEATURES = (
    ("porosity",)
    + tuple(f"surface_{rank}" for rank in ("min", "mid", "max"))
    + tuple(f"s2_lag{lag}_{rank}" for lag in LAGS for rank in ("min", "mid", "max"))
)
CHUNK = 256  # images per descriptor pass: bounded memory at 64^3 and up


def descriptors(images: np.ndarray) -> np.ndarray:
    """Symmetry-invariant image statistics (see the module docstring).

    Parameters
    ----------
    images : np.ndarray of bool, shape (N, Z, Y, X)
        ``True`` = pore; periodic.

    Returns
    -------
    np.ndarray of float64, shape (N, len(FEATURES))
        Porosity, sorted specific surfaces (1/voxel), sorted normalised two-point
        autocorrelations per lag (dimensionless).
    """
    images = np.asarray(images, dtype=bool)
    if images.ndim != 4:
        raise PvaeError(f"descriptors: expected images (N, Z, Y, X), got shape {images.shape}")
    return np.concatenate(
        [_descriptors(images[i : i + CHUNK]) for i in range(0, len(images), CHUNK)]
    ) if len(images) else np.zeros((0, len(FEATURES)))  # fmt: skip


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


def store_descriptors(store, rows) -> np.ndarray:
    """:func:`descriptors` of some rows of a :class:`~pvae.data.store.reader.VoxelStore`,
    read in chunks, (len(rows), F)."""
    rows = np.asarray(rows, dtype=int)
    parts = [descriptors(store.images(rows[i : i + CHUNK])) for i in range(0, len(rows), CHUNK)]
    return np.concatenate(parts) if parts else np.zeros((0, len(FEATURES)))


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
    out = np.empty(len(points))
    for start in range(0, len(points), 1024):
        block = points[start : start + 1024]
        d2 = ((block[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2)  # (B, R)
        d = np.sqrt(np.sort(d2, axis=1)[:, int(skip_self) : k + int(skip_self)])
        out[start : start + len(block)] = d.mean(axis=1)
    return out
