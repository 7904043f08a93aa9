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
- ``blur``: a parent made anisotropic by a directional blur of its signed distance,
  thresholded at the target porosity (:func:`pvae.design.blur.blur_field`), its blur
  searched by LBM (:func:`blur_search`): the parents in the order of
  :func:`~pvae.design.blur.blur_key` of their Kozeny–Carman estimates, each verified
  unblurred, then blurred along the axes whose K falls short by the shortfall over a
  slope (:data:`BLUR_SLOPE` at first, then the slope each axis showed), up to
  :data:`BLUR_TRIES` solves per parent.

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
from pvae.design.blur import blur_field, blur_key, blur_name
from pvae.design.pool import (
    DesignPool,
    Parent,
    blur_parents,
    kozeny_carman_factor,
    nearest_parents,
)
from pvae.design.targets import K_TARGETS, k_targets, tolerance_errors
from pvae.physics.lbm import LBMSettings
from pvae.vae.fidelity import TOLERANCE
from pvae.vae.verification import verify_structures

BASELINES = ("nearest", "nearest_porosity", "splice", "blur")
FRACTIONS = (0.25, 0.5, 0.75)
"""Slab thicknesses of a splice, as fractions of the side."""
BLUR_SLOPE = 0.2
"""Decades of log10 K_ii per voxel of blur along i that the ``blur`` baseline assumes until
it has measured a slope: sphere packs at porosity 0.44 gave 0.18-0.23 up to 3 voxels
(:mod:`pvae.design.blur`). A calibration given to the baseline, which makes it stronger."""
BLUR_TRIES = 4  # LBM solves per parent in the blur search
MAX_BLUR = 6.0  # voxels
BLUR_PARENTS = 32  # (sample, axis order) pairs the blur search may try, best first


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
    kind : {"nearest", "nearest_porosity", "splice", "blur"}
    budget : int
        LBM solves at most (``nearest`` uses none).
    lbm : LBMSettings, optional
    parents : int
        (sample, axis order) pairs nearest to the target that candidates come from
        (``blur`` tries up to :data:`BLUR_PARENTS`, by :func:`~pvae.design.pool.blur_parents`).

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
    if kind not in BASELINES:
        raise PvaeError(f"unknown baseline {kind!r}; choose from {', '.join(BASELINES)}")
    if kind == "blur":
        return blur_search(pool, target, budget, lbm, device)
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
        score, _ = _verified_score(image, target, lbm, device)
        best["lbm_solves"] += 1
        if score < best["score"]:
            best |= {"score": score, "candidate": names[c],
                     "estimated_score": float(expected[c])}  # fmt: skip
        if score <= 1.0:
            best["success"] = True
            break
    return best


def _verified_score(image: np.ndarray, target, lbm, device) -> tuple[float, np.ndarray]:
    """LBM-verified score of a structure (tolerance units) and its log10 K diagonal (3,)."""
    verified = verify_structures(image[None], lbm, device).iloc[0]
    measured = np.array([verified[f"verified_log10_{k}"] for k in K_TARGETS], dtype=float)
    score = float(tolerance_errors([verified["verified_porosity"]], [measured], target).max())
    return score, measured


def _kozeny_carman_estimate(pool: DesignPool, parent: Parent, porosity: float) -> np.ndarray:
    """log10 K diagonal (3,) of a parent with its porosity set, from its label."""
    n = float(pool.store.manifest.iloc[parent.row]["porosity"])
    factor = kozeny_carman_factor(n, porosity) if 0 < n < 1 else 1.0
    with np.errstate(divide="ignore"):
        return np.log10(_parent_k(pool, parent) * factor)


def blur_search(
    pool: DesignPool,
    target: dict[str, float],
    budget: int,
    lbm: LBMSettings | None = None,
    device: str = "cpu",
) -> dict:
    """The ``blur`` baseline (module docstring): directional blurs of catalogue samples,
    searched by LBM.

    Per parent (best :func:`~pvae.design.blur.blur_key` first), the blur starts at
    zero; after each verification, the blur along every axis whose verified K falls
    short of the target (or overshoots it while blurred) moves by the miss over that
    axis's slope, within [0, :data:`MAX_BLUR`]. A parent is left after
    :data:`BLUR_TRIES` solves, when the blur stops moving, or at once when an unblurred
    axis overshoots the target by more than the tolerance.

    Parameters
    ----------
    pool : DesignPool
    target : dict
        Property -> value, with porosity (else the parents' own).
    budget : int
        LBM solves at most.
    lbm : LBMSettings, optional
    device : str

    Returns
    -------
    dict
        As :func:`catalogue_baseline`; ``candidate`` is ``<parent>~blur(x=..)``.
    """
    best = {"success": False, "score": math.inf, "lbm_solves": 0, "candidate": None}
    ks = [K_TARGETS.index(k) for k in k_targets(target)]
    goal = np.full(3, np.nan)
    goal[ks] = np.log10([target[K_TARGETS[j]] for j in ks])
    for parent in blur_parents(pool, target, BLUR_PARENTS):
        image = _parent_image(pool, parent)
        porosity = target.get("porosity", float(image.mean()))
        estimate = _kozeny_carman_estimate(pool, parent, porosity)
        key = float(blur_key(estimate[None], target)[0])
        field = signed_distance(image)
        sigma, slope, last = np.zeros(3), np.full(3, BLUR_SLOPE), None  # sigma: x, y, z
        for _ in range(BLUR_TRIES):
            if best["lbm_solves"] >= budget:
                return best
            blurred = blur_field(field, sigma[::-1], porosity)
            score, measured = _verified_score(blurred, target, lbm, device)
            best["lbm_solves"] += 1
            if score < best["score"]:
                name = parent.name + (f"~{blur_name(sigma[::-1])}" if sigma.any() else "")
                best |= {"score": score, "candidate": name, "estimated_score": key}
            if score <= 1.0:
                best["success"] = True
                return best
            if last is not None:  # the slope each moved axis showed
                moved = np.abs(sigma - last[0]) > 0
                seen = (measured - last[1]) / np.where(moved, sigma - last[0], 1.0)
                slope = np.where(moved & (seen > 0.02), seen, slope)
            miss = np.nan_to_num(goal - measured, nan=0.0, posinf=0.0, neginf=0.0)
            if np.any((sigma == 0) & (miss < -TOLERANCE["log10"])):
                break  # an unblurred axis already too permeable: no blur lowers it
            step = np.where(np.abs(miss) > TOLERANCE["log10"] / 2, miss / slope, 0.0)
            new = np.clip(sigma + step, 0.0, MAX_BLUR)
            if np.allclose(new, sigma, atol=0.1):
                break
            last, sigma = (sigma, measured), new
    return best
