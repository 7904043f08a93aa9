"""File names and bit packing of a dataset directory.

A dataset directory holds

``manifest.parquet``
    one row per sample (schema in :mod:`pvae.data.store.manifest`); its Parquet metadata
    (key ``pvae``) holds ``format_version``, ``shape``, ``count``, ``voxels_sha256``,
    ``fingerprint`` and how the dataset was made;
``voxels.npy``
    uint8 array (N, ceil(Z*Y*X / 8)): each image flattened in C order (z, y, x) and
    bit-packed with :func:`numpy.packbits` (big-endian bit order), pore = 1. Read
    with ``np.load(..., mmap_mode="r")`` so one sample costs one row;
``surrogate.pt`` (optional)
    a CNN surrogate bundle (:mod:`pvae.surrogate`) trained on this dataset's training
    split: the default critic that measures decoded structures (fidelity during
    training and evaluation). Not part of the fingerprint.
"""

import math

import numpy as np

FORMAT_VERSION = 1
MANIFEST = "manifest.parquet"
VOXELS = "voxels.npy"
SURROGATE = "surrogate.pt"


def packed_size(shape: tuple[int, int, int]) -> int:
    """Bytes per bit-packed image of ``shape`` (Z, Y, X)."""
    return math.ceil(math.prod(shape) / 8)


def pack(image: np.ndarray) -> np.ndarray:
    """Bit-pack a boolean image (Z, Y, X) into a uint8 row of :func:`packed_size` bytes."""
    return np.packbits(np.ascontiguousarray(image, dtype=bool).ravel())


def unpack(rows: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Unpack uint8 rows (..., packed_size) into boolean images (..., Z, Y, X)."""
    count = math.prod(shape)
    bits = np.unpackbits(rows, axis=-1, count=count).view(bool)
    return bits.reshape(*rows.shape[:-1], *shape)
