"""Porosity n^F of a voxel image."""

import numpy as np


def porosity(image: np.ndarray) -> float:
    """Exact porosity n^F = pore voxels / all voxels.

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X) or (B, Z, Y, X)
        ``True`` = pore. Axis order (z, y, x); a leading batch axis is allowed.

    Returns
    -------
    float or np.ndarray
        Porosity in [0, 1]; an array of shape (B,) for a batch.
    """
    image = np.asarray(image)
    if image.dtype != np.bool_:
        raise TypeError(f"porosity expects a boolean image (True = pore), got {image.dtype}")
    if image.ndim == 4:
        return image.reshape(image.shape[0], -1).mean(axis=1)
    if image.ndim != 3:
        raise ValueError(f"porosity expects a (Z, Y, X) image, got shape {image.shape}")
    return float(image.mean())
