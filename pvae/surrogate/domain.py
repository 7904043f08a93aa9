"""The surrogate's applicability domain: is an image like the ones it was trained on?

An ensemble's spread does not catch foreign structures: the members agree with each
other on an image unlike any they saw, and are wrong together. This module describes
each image by symmetry-invariant statistics that the permeability depends on, and
measures how far an image lies from the training images in that space. Samples beyond
a threshold calibrated on in-distribution samples the networks never saw go to LBM.

Descriptors of an image (pore = ``True``), :data:`FEATURES`:

- porosity;
- specific surface per axis: the share of voxel faces normal to that axis that
  separate pore from solid (1/voxel);
- the normalised two-point autocorrelation per axis at lags of :data:`LAGS` voxels,
  ``(S2(r) - phi^2) / (phi - phi^2)`` with ``S2(r)`` the probability that two voxels
  ``r`` apart are both pore (periodic); 1 at r = 0, 0 for an uncorrelated medium.

The per-axis values of each quantity are sorted, so the descriptors are invariant
under the 48 cube symmetries the surrogate is trained with.

The distance of an image is the mean Euclidean distance to its :data:`NEIGHBOURS`
nearest training images, after standardising every descriptor by the training set's
mean and standard deviation. The threshold is a quantile (default 0.99) of the
distances of in-distribution samples the reference does not contain: the validation
split, and every training image with itself left out.
"""

from dataclasses import dataclass

import numpy as np

from pvae.core.errors import PvaeError
from pvae.data.store.reader import open_dataset

LAGS = (1, 2, 4, 8)
AXES = ("x", "y", "z")  # array axes 2, 1, 0
FEATURES = (
    ("porosity",)
    + tuple(f"surface_{rank}" for rank in ("min", "mid", "max"))
    + tuple(f"s2_lag{lag}_{rank}" for lag in LAGS for rank in ("min", "mid", "max"))
)
NEIGHBOURS = 5
QUANTILE = 0.99
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


def _knn_mean_distance(points: np.ndarray, reference: np.ndarray, k: int, skip_self=False):
    """Mean distance of each point to its k nearest reference points, (N,)."""
    out = np.empty(len(points))
    for start in range(0, len(points), 1024):
        block = points[start : start + 1024]
        d2 = ((block[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2)  # (B, R)
        d = np.sqrt(np.sort(d2, axis=1)[:, int(skip_self) : k + int(skip_self)])
        out[start : start + len(block)] = d.mean(axis=1)
    return out


@dataclass
class ApplicabilityDomain:
    """Where a surrogate can be trusted: near the images it was trained on.

    Attributes
    ----------
    reference : np.ndarray, shape (R, F)
        Standardised descriptors of the training images.
    mean, scale : np.ndarray, shape (F,)
        Standardisation of the descriptors (training mean and standard deviation).
    threshold : float
        Distance above which an image is outside the domain (standardised units).
    quantile : float
        The quantile of in-distribution distances the threshold was set at.
    neighbours : int
        k of the k-nearest-neighbour distance (at most the training images - 1).
    """

    reference: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    threshold: float
    quantile: float = QUANTILE
    neighbours: int = NEIGHBOURS

    @classmethod
    def fit(cls, train: np.ndarray, held_out: np.ndarray, quantile: float = QUANTILE,
            neighbours: int = NEIGHBOURS) -> "ApplicabilityDomain":  # fmt: skip
        """Calibrate on descriptors of the training images and of held-out ones.

        Parameters
        ----------
        train : np.ndarray, shape (R, F)
            :func:`descriptors` of the images the surrogate was trained on.
        held_out : np.ndarray, shape (V, F)
            Descriptors of in-distribution images it was not trained on (validation).
        quantile : float
            Share of in-distribution images to keep inside (0.5 to 1).
        neighbours : int
        """
        if not 0.5 <= quantile <= 1.0:
            raise PvaeError(f"domain quantile {quantile}: need 0.5 <= q <= 1")
        if len(train) < 2:
            raise PvaeError(f"domain: {len(train)} training images, need at least 2")
        neighbours = min(neighbours, len(train) - 1)  # a tiny training set: fewer neighbours
        mean, scale = train.mean(axis=0), np.maximum(train.std(axis=0), 1e-6)
        reference = (train - mean) / scale
        inside = np.concatenate([
            _knn_mean_distance(reference, reference, neighbours, skip_self=True),
            _knn_mean_distance((held_out - mean) / scale, reference, neighbours),
        ])  # fmt: skip
        threshold = float(np.quantile(inside, quantile))
        return cls(reference, mean, scale, threshold, quantile, neighbours)

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Distance to the training images, (N,), from descriptors (N, F)."""
        return _knn_mean_distance((features - self.mean) / self.scale, self.reference,
                                  self.neighbours)  # fmt: skip

    def to_dict(self) -> dict:
        """Plain values for a bundle (``torch.load(weights_only=True)`` safe)."""
        return {
            "features": list(FEATURES),
            "reference": self.reference.tolist(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "threshold": self.threshold,
            "quantile": self.quantile,
            "neighbours": self.neighbours,
        }

    @classmethod
    def from_dict(cls, state: dict) -> "ApplicabilityDomain":
        """Inverse of :meth:`to_dict`."""
        if list(state["features"]) != list(FEATURES):
            raise PvaeError("surrogate domain: descriptors of another pvae version; "
                            "refit it (pvae surrogate domain)")  # fmt: skip
        return cls(
            np.asarray(state["reference"], dtype=float),
            np.asarray(state["mean"], dtype=float),
            np.asarray(state["scale"], dtype=float),
            float(state["threshold"]),
            float(state["quantile"]),
            int(state["neighbours"]),
        )


def store_descriptors(store, rows) -> np.ndarray:
    """:func:`descriptors` of some rows of a :class:`~pvae.data.store.reader.VoxelStore`,
    read in chunks, (len(rows), F)."""
    rows = np.asarray(rows, dtype=int)
    parts = [descriptors(store.images(rows[i : i + CHUNK])) for i in range(0, len(rows), CHUNK)]
    return np.concatenate(parts) if parts else np.zeros((0, len(FEATURES)))


def fit_domain(parts, quantile: float = QUANTILE) -> ApplicabilityDomain:
    """The domain of a surrogate from the stores and rows it was trained on.

    Parameters
    ----------
    parts : sequence of (VoxelStore, train_rows, val_rows)
        Each dataset with its training and validation row indices.
    quantile : float
        See :meth:`ApplicabilityDomain.fit`.
    """
    train = np.concatenate([store_descriptors(store, rows) for store, rows, _ in parts])
    held = np.concatenate([store_descriptors(store, rows) for store, _, rows in parts])
    return ApplicabilityDomain.fit(train, held, quantile)


def refit_domain(info: dict, paths=None, quantile: float = QUANTILE) -> ApplicabilityDomain:
    """The domain of a trained surrogate, from the datasets its bundle records.

    Parameters
    ----------
    info : dict
        The bundle's ``info`` (:attr:`SurrogateEnsemble.info`): ``datasets`` with
        path, fingerprint and the ``train`` / ``val`` sample IDs.
    paths : sequence of str or Path, optional
        Where those datasets are now, in the bundle's order (default: the recorded
        paths). Each must hold the recorded fingerprint.
    quantile : float
    """
    records = info.get("datasets") or []
    paths = list(paths) if paths else [r["path"] for r in records]
    if len(paths) != len(records):
        raise PvaeError(f"surrogate domain: the model records {len(records)} datasets, "
                        f"{len(paths)} given")  # fmt: skip
    parts = []
    for record, path in zip(records, paths, strict=True):
        store = open_dataset(path)
        if store.fingerprint != record["fingerprint"]:
            raise PvaeError(f"{path}: fingerprint {store.fingerprint}, but the surrogate was "
                            f"trained on {record['fingerprint']}")  # fmt: skip
        rows = {sample: i for i, sample in enumerate(store.manifest["sample_id"])}
        parts.append((store, [rows[s] for s in record["train"]], [rows[s] for s in record["val"]]))
    return fit_domain(parts, quantile)
