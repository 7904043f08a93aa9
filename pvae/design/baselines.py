"""What a user can do without a model: catalogue baselines for inverse design.

Each answers a target from the design pool's labelled samples alone and spends at most
a given number of LBM solves, so it can be compared with ``pvae inverse`` on the same
budget:

- ``nearest``: the pool sample, in any axis order (a rotated sample permutes its K
  diagonal), whose labels score best against the target. Costs nothing: its labels are
  known.
- ``nearest_porosity``: the best-scoring (sample, axis order) parents with their
  porosity set exactly to the target by thresholding a periodic signed distance field
  (the pores grow or shrink evenly, :func:`set_porosity`); ranked by their K estimated
  from the parent's label and the Kozeny–Carman porosity factor, then verified by LBM
  in that order until one succeeds or the budget is spent.
- ``splice``: two of those parents joined in voxel space, a slab of one (a quarter,
  half or three quarters of the side, normal to x, y or z) in the other
  (:func:`slab_splice`), porosity set as above; K estimated as layers in series along
  the slab normal and in parallel across it; verified as above.

A parent or splice that already meets the target by its estimate is verified like any
other: only LBM decides. ``nearest`` is reported from its labels.
"""

import math
from itertools import permutations

import numpy as np
from scipy import ndimage

from pvae.core.errors import PvaeError
from pvae.data.imaging.binarize import binarize_at
from pvae.data.symmetry import permuted_diagonal
from pvae.design.pool import DesignPool, Parent, nearest_parents
from pvae.design.targets import K_TARGETS, tolerance_errors
from pvae.physics.lbm import LBMSettings
from pvae.vae.verification import verify_structures

BASELINES = ("nearest", "nearest_porosity", "splice")
FRACTIONS = (0.25, 0.5, 0.75)
"""Slab thicknesses of a splice, as fractions of the side."""


def signed_distance(image: np.ndarray) -> np.ndarray:
    """Periodic signed distance to the pore-solid interface (voxels).

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
        True = pore; periodic.

    Returns
    -------
    np.ndarray of float, shape (Z, Y, X)
        Positive in the pore (distance to the nearest solid voxel), negative in the
        solid (minus the distance to the nearest pore voxel); exact up to half the side.
    """
    pad = [(s // 2, s // 2) for s in image.shape]
    tiled = np.pad(image, pad, mode="wrap")
    inner = tuple(slice(p, p + s) for (p, _), s in zip(pad, image.shape, strict=True))
    if tiled.all() or not tiled.any():  # one phase: no interface
        return np.full(image.shape, math.inf if image.all() else -math.inf)
    pore = ndimage.distance_transform_edt(tiled)[inner]
    solid = ndimage.distance_transform_edt(~tiled)[inner]
    return np.where(image, pore, -solid)


def set_porosity(image: np.ndarray, porosity: float) -> np.ndarray:
    """The image with its pores grown or shrunk evenly to an exact porosity.

    The ``round(porosity * size)`` voxels deepest in the pore by
    :func:`signed_distance` become pore (ties broken by voxel order).

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
    porosity : float

    Returns
    -------
    np.ndarray of bool, shape (Z, Y, X)
    """
    return binarize_at(signed_distance(image), porosity)


def slab_splice(a: np.ndarray, b: np.ndarray, axis: int, fraction: float) -> np.ndarray:
    """``b`` with a slab of ``a``: array-axis positions below ``fraction`` of the side.

    Parameters
    ----------
    a, b : np.ndarray of bool, shape (Z, Y, X)
    axis : int
        Array axis normal to the slab (0 = z, 1 = y, 2 = x).
    fraction : float
        Thickness of ``a``'s slab / side.

    Returns
    -------
    np.ndarray of bool, shape (Z, Y, X)
    """
    out = b.copy()
    cut = [slice(None)] * 3
    cut[axis] = slice(0, int(round(fraction * a.shape[axis])))
    out[tuple(cut)] = a[tuple(cut)]
    return out


def kozeny_carman_factor(porosity_from: float, porosity_to: float) -> float:
    """K(to) / K(from) by Kozeny–Carman, n^3 / (1 - n)^2, at a fixed specific surface."""

    def kc(n: float) -> float:
        return n**3 / (1.0 - n) ** 2

    return kc(porosity_to) / kc(porosity_from)


def splice_estimate(k_a: np.ndarray, k_b: np.ndarray, axis: int, fraction: float) -> np.ndarray:
    """K diagonal (xx, yy, zz) of a slab splice from its parents', as layered media.

    Along the slab normal the layers are in series (thickness-weighted harmonic mean),
    across it in parallel (thickness-weighted arithmetic mean).

    Parameters
    ----------
    k_a, k_b : np.ndarray, shape (3,)
        K diagonal of the slab's parent and of the rest's (lattice units).
    axis : int
        Array axis normal to the slab (0 = z, 1 = y, 2 = x).
    fraction : float

    Returns
    -------
    np.ndarray, shape (3,)
    """
    normal = 2 - axis  # array axis (z, y, x) -> component (x, y, z)
    out = fraction * k_a + (1 - fraction) * k_b
    out[normal] = 1.0 / (fraction / k_a[normal] + (1 - fraction) / k_b[normal])
    return out


def _parent_image(pool: DesignPool, parent: Parent) -> np.ndarray:
    return np.ascontiguousarray(parent.symmetry.apply(pool.store.images([parent.row])[0]))


def _parent_k(pool: DesignPool, parent: Parent) -> np.ndarray:
    labels = pool.store.manifest.iloc[parent.row][list(K_TARGETS)].to_numpy(float)
    return permuted_diagonal(labels, parent.symmetry)


def _candidates(pool, target, kind: str, parents: int):
    """(name, image, estimated K diagonal) of every candidate of a baseline."""
    chosen = nearest_parents(pool, target, parents)
    images = [_parent_image(pool, p) for p in chosen]
    ks = [_parent_k(pool, p) for p in chosen]
    porosities = [float(img.mean()) for img in images]
    if kind == "nearest_porosity":
        for parent, image, k, n in zip(chosen, images, ks, porosities, strict=True):
            yield parent.name, image, k, n
        return
    for i, j in permutations(range(len(chosen)), 2):
        for axis in range(3):
            for fraction in FRACTIONS:
                image = slab_splice(images[i], images[j], axis, fraction)
                name = f"{chosen[i].name}|{chosen[j].name}:{'zyx'[axis]}{fraction:g}"
                k = splice_estimate(ks[i], ks[j], axis, fraction)
                yield name, image, k, float(image.mean())


def catalogue_baseline(
    pool: DesignPool,
    target: dict[str, float],
    kind: str,
    budget: int,
    lbm: LBMSettings | None = None,
    parents: int = 8,
    device: str = "cpu",
) -> dict:
    """One no-model baseline (module docstring) for one target.

    Parameters
    ----------
    pool : DesignPool
    target : dict
        Property -> value (:mod:`pvae.design.targets`).
    kind : {"nearest", "nearest_porosity", "splice"}
    budget : int
        LBM solves at most (``nearest`` uses none).
    lbm : LBMSettings, optional
    parents : int
        (sample, axis order) pairs nearest to the target that candidates come from.

    Returns
    -------
    dict
        ``success``, ``score`` (best verified, tolerance units), ``lbm_solves``,
        ``candidate`` (its name) and ``estimated_score`` of the candidates verified.
    """
    if kind == "nearest":
        best = nearest_parents(pool, target, 1)[0]
        return {"success": best.score <= 1.0, "score": best.score, "lbm_solves": 0,
                "candidate": best.name}  # fmt: skip
    if kind not in ("nearest_porosity", "splice"):
        raise PvaeError(f"unknown baseline {kind!r}; choose from {', '.join(BASELINES)}")
    names, images, estimates = [], [], []
    for name, image, k, n in _candidates(pool, target, kind, parents):
        goal = target.get("porosity", n)
        factor = kozeny_carman_factor(n, goal) if 0 < n < 1 else 1.0
        names.append(name)
        images.append(image)
        estimates.append((goal, np.log10(np.maximum(k * factor, 1e-30))))
    porosity = np.array([e[0] for e in estimates])
    log10_k = np.array([e[1] for e in estimates])  # (C, 3)
    expected = tolerance_errors(porosity, log10_k, target).max(axis=1)
    best = {"success": False, "score": math.inf, "lbm_solves": 0, "candidate": None}
    for c in np.argsort(expected, kind="stable")[:budget]:
        image = set_porosity(images[c], porosity[c]) if "porosity" in target else images[c]
        verified = verify_structures(image[None], lbm, device).iloc[0]
        measured = [verified[f"verified_log10_{k}"] for k in K_TARGETS]
        score = float(tolerance_errors([verified["verified_porosity"]], [measured],
                                       target).max())  # fmt: skip
        best["lbm_solves"] += 1
        if score < best["score"]:
            best |= {"score": score, "candidate": names[c],
                     "estimated_score": float(expected[c])}  # fmt: skip
        if score <= 1.0:
            best["success"] = True
            break
    return best
