"""Physics check of generated structures: exact porosity and LBM permeability.

Every structure the platform proposes (interpolation steps, inverse designs) is
measured here before it is reported, so predicted and verified properties can be
compared side by side.
"""

import numpy as np
import pandas as pd

from pvae.data.store.manifest import K_DIAGONAL
from pvae.physics.lbm import LBMSettings, permeability_batch
from pvae.physics.porosity import porosity


def verify_structures(
    images: np.ndarray,
    settings: LBMSettings | None = None,
    device: str = "cpu",
    batch_size: int = 8,
) -> pd.DataFrame:
    """Porosity and permeability of generated images.

    Parameters
    ----------
    images : np.ndarray of bool, shape (S, D, H, W)
        True = pore, axes (z, y, x).
    settings : LBMSettings, optional
        Solver settings (superficial convention is used regardless).
    device : str
    batch_size : int
        Images per LBM simulation.

    Returns
    -------
    pd.DataFrame
        One row per image: ``verified_porosity``; ``verified_k_xx``, ``verified_k_yy``,
        ``verified_k_zz`` (lattice units; 0 where no path percolates, NaN for an image
        without solid); their ``verified_log10_k_*`` (NaN where K = 0);
        ``lbm_converged`` (all directions converged).
    """
    settings = settings or LBMSettings()
    n = porosity(images) if len(images) else np.zeros(0)
    k = np.full((len(images), 3), np.nan)
    converged = np.zeros(len(images), dtype=bool)
    solvable = np.flatnonzero((n > 0) & (n < 1))
    k[n == 0] = 0.0
    converged[n == 0] = True
    for start in range(0, len(solvable), batch_size):
        rows = solvable[start : start + batch_size]
        for row, result in zip(
            rows, permeability_batch(images[rows], settings, device=device), strict=True
        ):
            k[row] = np.diag(result.k)
            converged[row] = bool(result.converged.all())
    frame = pd.DataFrame({"verified_porosity": n})
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, name in enumerate(K_DIAGONAL):
            frame[f"verified_{name}"] = k[:, j]
            frame[f"verified_log10_{name}"] = np.where(k[:, j] > 0, np.log10(k[:, j]), np.nan)
    frame["lbm_converged"] = converged
    return frame
