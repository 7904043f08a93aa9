"""The surrogate's applicability domain: is an image like the ones it was trained on?

An ensemble's spread does not catch foreign structures: the members agree with each
other on an image unlike any they saw, and are wrong together. This module describes
each image by symmetry-invariant statistics that the permeability depends on, and
measures how far an image lies from the training images in that space. Samples beyond
a threshold calibrated on in-distribution samples the networks never saw go to LBM.

The descriptors (:mod:`pvae.data.descriptors`) are invariant under the 48 cube
symmetries the surrogate is trained with: porosity, specific surface and two-point
correlation per axis, sorted; a domain fitted now adds the Euler characteristics, pore
and solid sizes and lineal-path shares (``DOMAIN_FEATURES``), which tell apart
structures with the same porosity and correlations but other throats, struts or
straight paths.

The distance of an image is the mean Euclidean distance to its :data:`NEIGHBOURS`
nearest training images, after standardising every descriptor by the training set's
mean and standard deviation. A domain fitted now divides it by the same distance of
those neighbours to their own nearest training images (local outlier factor): the
training families fill their regions of descriptor space with different densities,
and a raw distance that is ordinary among spread-out foams is far from tightly
clustered channels. The threshold is a quantile (default 0.99) of the distances of
in-distribution samples the reference does not contain: the validation split, and
every training image with itself left out.
"""

from dataclasses import dataclass

import numpy as np

from pvae.core.errors import PvaeError
from pvae.data.descriptors import (
    DOMAIN_FEATURES,
    FEATURES,
    descriptors,
    nearest,
    store_descriptors,
)
from pvae.data.store.reader import open_dataset

NEIGHBOURS = 5
QUANTILE = 0.99


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
    extended : bool
        The descriptors are ``DOMAIN_FEATURES`` (else ``FEATURES``, domains fitted
        before the extension).
    local : np.ndarray, shape (R,), optional
        Each training image's own k-nearest-neighbour distance; distances are divided
        by the mean of it over the image's neighbours (None: raw distances, domains
        fitted before that).
    """

    reference: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    threshold: float
    quantile: float = QUANTILE
    neighbours: int = NEIGHBOURS
    extended: bool = True
    local: np.ndarray | None = None

    @classmethod
    def fit(cls, train: np.ndarray, held_out: np.ndarray, quantile: float = QUANTILE,
            neighbours: int = NEIGHBOURS, local: bool = True) -> "ApplicabilityDomain":  # fmt: skip
        """Calibrate on descriptors of the training images and of held-out ones.

        Parameters
        ----------
        train : np.ndarray, shape (R, F)
            :func:`~pvae.data.descriptors.descriptors` of the images the surrogate was
            trained on, F = len(FEATURES) or len(DOMAIN_FEATURES).
        held_out : np.ndarray, shape (V, F)
            Descriptors of in-distribution images it was not trained on (validation).
        quantile : float
            Share of in-distribution images to keep inside (0.5 to 1).
        neighbours : int
        local : bool
            Divide by the neighbours' own distances (local outlier factor).
        """
        if not 0.5 <= quantile <= 1.0:
            raise PvaeError(f"domain quantile {quantile}: need 0.5 <= q <= 1")
        if len(train) < 2:
            raise PvaeError(f"domain: {len(train)} training images, need at least 2")
        if train.shape[1] not in (len(FEATURES), len(DOMAIN_FEATURES)):
            raise PvaeError(f"domain: {train.shape[1]} descriptors, not a known set")
        neighbours = min(neighbours, len(train) - 1)  # a tiny training set: fewer neighbours
        mean, scale = train.mean(axis=0), np.maximum(train.std(axis=0), 1e-6)
        reference = (train - mean) / scale
        own, index = nearest(reference, reference, neighbours, skip_self=True)
        domain = cls(reference, mean, scale, 0.0, quantile, neighbours,
                     train.shape[1] == len(DOMAIN_FEATURES), own if local else None)  # fmt: skip
        if local:
            own = own / np.maximum(own[index].mean(axis=1), 1e-12)
        inside = np.concatenate([own, domain.distance(held_out)])
        domain.threshold = float(np.quantile(inside, quantile))
        return domain

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Distance to the training images, (N,), from descriptors (N, F)."""
        raw, index = nearest((features - self.mean) / self.scale, self.reference,
                             self.neighbours)  # fmt: skip
        if self.local is None:
            return raw
        return raw / np.maximum(self.local[index].mean(axis=1), 1e-12)

    def image_distance(self, images: np.ndarray) -> np.ndarray:
        """Distance of images (N, Z, Y, X), bool, ``True`` = pore, (N,)."""
        return self.distance(descriptors(images, self.extended))

    def store_distance(self, store, rows) -> np.ndarray:
        """Distance of some rows of a :class:`~pvae.data.store.reader.VoxelStore`, (N,)."""
        return self.distance(store_descriptors(store, rows, self.extended))

    def to_dict(self) -> dict:
        """Plain values for a bundle (``torch.load(weights_only=True)`` safe)."""
        return {
            "features": list(DOMAIN_FEATURES if self.extended else FEATURES),
            "reference": self.reference.tolist(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "threshold": self.threshold,
            "quantile": self.quantile,
            "neighbours": self.neighbours,
            "local": None if self.local is None else self.local.tolist(),
        }

    @classmethod
    def from_dict(cls, state: dict) -> "ApplicabilityDomain":
        """Inverse of :meth:`to_dict` (also of domains fitted before the extension)."""
        features = list(state["features"])
        if features not in (list(FEATURES), list(DOMAIN_FEATURES)):
            raise PvaeError("surrogate domain: descriptors of another pvae version; "
                            "refit it (pvae surrogate domain)")  # fmt: skip
        local = state.get("local")
        return cls(
            np.asarray(state["reference"], dtype=float),
            np.asarray(state["mean"], dtype=float),
            np.asarray(state["scale"], dtype=float),
            float(state["threshold"]),
            float(state["quantile"]),
            int(state["neighbours"]),
            features == list(DOMAIN_FEATURES),
            None if local is None else np.asarray(local, dtype=float),
        )


def no_domain_message(model) -> str:
    """The warning for a surrogate bundle without a domain (made before domains existed)."""
    return (f"{model} has no applicability domain: images unlike its training images are not "
            "flagged; add one with pvae surrogate domain MODEL")  # fmt: skip


def fit_domain(parts, quantile: float = QUANTILE, extended: bool = True,
               local: bool = True) -> ApplicabilityDomain:  # fmt: skip
    """The domain of a surrogate from the stores and rows it was trained on.

    Parameters
    ----------
    parts : sequence of (VoxelStore, train_rows, val_rows)
        Each dataset with its training and validation row indices.
    quantile : float
        See :meth:`ApplicabilityDomain.fit`.
    extended, local : bool
        ``DOMAIN_FEATURES`` (else ``FEATURES``) and the local outlier factor (else
        the raw distance): False, False fits a domain the earlier way, for comparison.
    """
    train = np.concatenate([store_descriptors(s, rows, extended) for s, rows, _ in parts])
    held = np.concatenate([store_descriptors(s, rows, extended) for s, _, rows in parts])
    return ApplicabilityDomain.fit(train, held, quantile, local=local)


def refit_domain(info: dict, paths=None, quantile: float = QUANTILE,
                 **options) -> ApplicabilityDomain:  # fmt: skip
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
    **options
        ``extended`` and ``local`` of :func:`fit_domain`.
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
        rows = {part: [store.index_of(s) for s in record[part]] for part in ("train", "val")}
        parts.append((store, rows["train"], rows["val"]))
    return fit_domain(parts, quantile, **options)
