"""Content fingerprints of datasets: voxels plus labels, independent of file layout."""

import hashlib

import numpy as np
import pandas as pd

from pvae.data.store.manifest import LABEL_COLUMNS

_CHUNK_ROWS = 1024


def voxel_digest(packed: np.ndarray, shape: tuple[int, int, int]) -> str:
    """SHA-256 of the bit-packed voxels and the image shape.

    Parameters
    ----------
    packed : np.ndarray of uint8, shape (N, ceil(Z*Y*X / 8))
        Bit-packed images, one row per sample (may be a memory map).
    shape : tuple of int
        (Z, Y, X) of every image.
    """
    digest = hashlib.sha256(repr(tuple(int(n) for n in shape)).encode())
    for start in range(0, len(packed), _CHUNK_ROWS):
        digest.update(np.ascontiguousarray(packed[start : start + _CHUNK_ROWS]).tobytes())
    return digest.hexdigest()


def dataset_fingerprint(voxels_sha256: str, manifest: pd.DataFrame) -> str:
    """Fingerprint of a dataset: hash of the voxel digest, sample IDs and labels.

    Two datasets with the same images, IDs, porosity and permeability values have
    the same fingerprint whatever their provenance columns say; relabelling changes it.

    Returns
    -------
    str
        ``sha256:<first 16 hex digits>``.
    """
    digest = hashlib.sha256(voxels_sha256.encode())
    digest.update("\n".join(manifest["sample_id"]).encode())
    labels = manifest[list(LABEL_COLUMNS)].to_numpy(dtype="<f8")
    labels = np.where(np.isnan(labels), np.nan, labels)  # one NaN bit pattern
    digest.update(labels.tobytes())
    return "sha256:" + digest.hexdigest()[:16]
