"""Directional blurs: a design move that makes a structure anisotropic.

Blurring a structure's smooth field (decoder logits, or a signed distance) with a
Gaussian along one axis before thresholding it at the same porosity elongates its pores
and grains along that axis: K along it rises, K across it barely moves. On sphere packs
at porosity 0.44 (three samples, 32^3, LBM), a blur of the signed distance by 1.5 / 3 /
5 voxels along x raised log10 K_xx by 0.29-0.34 / 0.54-0.69 / 0.67-0.89 decade and moved
K_yy and K_zz by -0.03 to +0.18 decade up to 3 voxels
(``bench/results/generation_attempts.md``, attempt 20). The catalogue's sphere packs and
foams are nearly isotropic (median max/min K_ii ratio 1.1 and 1.2), so recombining them
cannot reach the anisotropy of structures such as Gaussian random
fields with a correlation length per axis; a blur can.

Inverse design tries :data:`BLURS` on the decoded logits of its best screened
recombinations (:mod:`pvae.design.inverse`), and the ``blur`` baseline
(:mod:`pvae.design.baselines`) searches the blur of a catalogue sample by LBM alone.
"""

import numpy as np
from scipy import ndimage

from pvae.data.imaging.binarize import binarize_at
from pvae.design.targets import K_TARGETS, k_targets
from pvae.vae.fidelity import TOLERANCE

BLUR_LEVELS = (0.5, 1.0, 2.0, 3.5)  # voxels
BLURS = tuple(
    tuple(level if axis in axes else 0.0 for axis in range(3))
    for axes in ((2,), (1,), (0,), (1, 2), (0, 2), (0, 1), (0, 1, 2))
    for level in BLUR_LEVELS
)
"""Per-array-axis (z, y, x) standard deviations, voxels: each of x, y, z, each pair of
them and all three, at every one of :data:`BLUR_LEVELS`."""

SHORTFALL_WEIGHT = 0.2
"""Weight of a shortfall of K below the target against an excess over it in
:func:`blur_key`: a blur can raise K along an axis by about 6 tolerances, never lower it."""


def blur_name(sigma) -> str:
    """``blur(x=2,y=2)`` for per-array-axis (z, y, x) standard deviations in voxels."""
    return "blur(" + ",".join(f"{'zyx'[a]}={sigma[a]:g}" for a in (2, 1, 0) if sigma[a] > 0) + ")"


def blur_key(log10_k: np.ndarray, target: dict[str, float]) -> np.ndarray:
    """How well a blur could bring structures to a target's K, smaller is better.

    The largest excess of the estimated log10 K_ii over the target (which a blur cannot
    remove), plus :data:`SHORTFALL_WEIGHT` times the largest shortfall, in tolerance
    units (0.1 decade), over the K components the target sets.

    Parameters
    ----------
    log10_k : np.ndarray, shape (N, 3)
        Estimated log10 K_xx, K_yy, K_zz (NaN: unknown; -inf: blocked).
    target : dict

    Returns
    -------
    np.ndarray, shape (N,)
        Zeros when the target sets no K.
    """
    ks = k_targets(target)
    if not ks:
        return np.zeros(len(log10_k))
    columns = [K_TARGETS.index(k) for k in ks]
    goal = np.log10([target[k] for k in ks])
    miss = (np.asarray(log10_k, float)[:, columns] - goal) / TOLERANCE["log10"]
    miss = np.nan_to_num(miss, nan=np.inf, posinf=np.inf, neginf=-np.inf)
    return np.clip(miss, 0, None).max(1) + SHORTFALL_WEIGHT * np.clip(-miss, 0, None).max(1)


def blur_field(field: np.ndarray, sigma, porosity: float) -> np.ndarray:
    """A periodic field blurred along the array axes and thresholded at a porosity.

    Parameters
    ----------
    field : np.ndarray of float, shape (Z, Y, X)
        Larger = more pore-like (a signed distance, :func:`pvae.design.baselines.signed_distance`).
    sigma : sequence of 3 floats
        Standard deviation along z, y, x, voxels.
    porosity : float

    Returns
    -------
    np.ndarray of bool, shape (Z, Y, X)
        True = pore; exactly ``round(porosity * size)`` pore voxels.
    """
    blurred = ndimage.gaussian_filter(np.asarray(field, np.float64), sigma=sigma, mode="wrap")
    return binarize_at(blurred, porosity)
