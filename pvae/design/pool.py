"""The samples inverse design may use: starts, novelty references and the lookup baseline.

Inverse design must not see the samples it is judged on. The pool is therefore the
model's *training split* when the dataset given is the one the model was trained on
(same fingerprint), and every labelled sample of any other dataset the user passes.
Latent starts are encoded pool samples, novelty is measured against the pool, and the
baseline a design must beat is the pool sample whose labels are nearest to the target
("lookup"), scored with its own labels exactly as a design is scored by LBM. Samples
under axis permutations (K diagonal permuted along) are parents of recombined designs
(:mod:`pvae.design.recombination`) and a stronger baseline.
"""

from dataclasses import dataclass

import numpy as np

from pvae.core.errors import PvaeError
from pvae.data.store.reader import VoxelStore
from pvae.data.symmetry import CubeSymmetry, axis_permutations, permuted_diagonal
from pvae.design.blur import blur_key
from pvae.design.targets import K_TARGETS, tolerance_errors
from pvae.vae.loading import LoadedModel


@dataclass(frozen=True)
class DesignPool:
    """Rows of a dataset that inverse design may start from and must differ from.

    Attributes
    ----------
    store : VoxelStore
    rows : np.ndarray of int, shape (P,)
        Labelled rows of ``store`` in the pool.
    description : str
        For reports, e.g. ``"training split of data/default (268 samples)"``.
    """

    store: VoxelStore
    rows: np.ndarray
    description: str

    def images(self) -> np.ndarray:
        """Pool structures, bool (P, Z, Y, X), True = pore."""
        return self.store.images(self.rows)

    def sample_ids(self) -> list[str]:
        return self.store.manifest["sample_id"].iloc[self.rows].tolist()


def design_pool(loaded: LoadedModel, store: VoxelStore) -> DesignPool:
    """The pool of :mod:`this module <pvae.design.pool>` for a model and a dataset."""
    labelled = np.flatnonzero(store.manifest["porosity"].notna().to_numpy())
    if store.fingerprint == loaded.dataset_fingerprint:
        rows = np.intersect1d(np.asarray(loaded.state["splits"]["train"], dtype=int), labelled)
        description = f"training split of {store.root} ({len(rows)} samples)"
    else:
        rows = labelled
        description = f"{store.root} ({len(rows)} labelled samples)"
    if not len(rows):
        raise PvaeError(f"{store.root}: no labelled samples to design from")
    return DesignPool(store, rows, description)


def label_errors(labels: np.ndarray, target: dict[str, float]) -> np.ndarray:
    """Errors of labelled structures against a target, in tolerance units.

    Parameters
    ----------
    labels : np.ndarray, shape (N, 4)
        Porosity and the K diagonal (lattice units).
    target : dict
        Property -> value, as in :mod:`pvae.design.targets`.

    Returns
    -------
    np.ndarray, shape (N, len(target))
        Porosity in 0.02, log10 K in 0.1 decade (inf where a K is not positive); a
        structure whose largest error is <= 1 meets the target.
    """
    k = labels[:, 1:4]
    with np.errstate(divide="ignore", invalid="ignore"):
        log10_k = np.where(k > 0, np.log10(k), np.nan)
    return tolerance_errors(labels[:, 0], log10_k, target)


@dataclass(frozen=True)
class Parent:
    """A pool sample under an axis permutation.

    Attributes
    ----------
    row : int
        Dataset row.
    sample_id : str
    symmetry : CubeSymmetry
    score : float
        Its labels' largest error against the target (:func:`label_errors`).
    """

    row: int
    sample_id: str
    symmetry: CubeSymmetry
    score: float

    @property
    def name(self) -> str:
        """``<sample_id>`` or ``<sample_id>@<perm>`` for a permuted one."""
        return permuted_name(self.sample_id, self.symmetry)


def permuted_name(sample_id: str, symmetry: CubeSymmetry) -> str:
    """``<sample_id>``, or ``<sample_id>@<axes>`` for a sample under an axis permutation
    (e.g. ``@xyz``: array axes reordered x, y, z)."""
    if symmetry.perm == (0, 1, 2):
        return sample_id
    return f"{sample_id}@{''.join('zyx'[p] for p in symmetry.perm)}"


def kozeny_carman_factor(porosity_from, porosity_to):
    """K(to) / K(from) by Kozeny–Carman, n^3 / (1 - n)^2, at a fixed specific surface
    (floats or arrays)."""

    def kc(n):
        return n**3 / (1.0 - n) ** 2

    return kc(porosity_to) / kc(porosity_from)


def _parents(pool: DesignPool, target: dict[str, float], count: int, key, permute: bool):
    """The ``count`` (sample, axis permutation) pairs of the pool with the smallest
    ``key`` of their labels (a function of (P, 4) porosity and K diagonal -> (P,))."""
    table = pool.store.manifest.iloc[pool.rows]
    labels = table[["porosity", *K_TARGETS]].to_numpy(float)
    symmetries = axis_permutations(pool.store.shape)[: None if permute else 1]
    permuted = [np.column_stack([labels[:, 0], permuted_diagonal(labels[:, 1:], s)])
                for s in symmetries]  # fmt: skip
    scores = np.stack([label_errors(p, target).max(axis=1) for p in permuted], axis=1)  # (P, G)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        keys = np.stack([key(p) for p in permuted], axis=1)
    best = np.argsort(keys, axis=None, kind="stable")[:count]
    ids = table["sample_id"].tolist()
    return [
        Parent(int(pool.rows[i]), ids[i], symmetries[g], float(scores[i, g]))
        for i, g in zip(*np.unravel_index(best, keys.shape), strict=True)
    ]


def nearest_parents(
    pool: DesignPool, target: dict[str, float], count: int, permute: bool = True
) -> list[Parent]:
    """The ``count`` (sample, axis permutation) pairs of the pool nearest to a target.

    Parameters
    ----------
    pool : DesignPool
    target : dict
    count : int
    permute : bool
        Consider every shape-keeping axis permutation of each sample (else only the
        samples as they are: the lookup baseline).

    Returns
    -------
    list of Parent
        Best label score first.
    """

    def key(labels):  # the largest error; a thousandth of the mean breaks ties
        errors = label_errors(labels, target)  # blocked directions: inf errors
        return errors.max(axis=1) + 1e-3 * errors.mean(axis=1)

    return _parents(pool, target, count, key, permute)


def blur_parents(pool: DesignPool, target: dict[str, float], count: int) -> list[Parent]:
    """The ``count`` (sample, axis permutation) pairs of the pool best to blur toward a
    target (:mod:`pvae.design.blur`).

    Ordered by :func:`~pvae.design.blur.blur_key` of their K at the target porosity,
    estimated from their labels by :func:`kozeny_carman_factor`: a blur raises K along
    the blurred axes and cannot lower it, so the best parents fall short of the target
    along some axes and do not exceed it along any.

    Returns
    -------
    list of Parent
        Best first; ``score`` is the label score, as in :func:`nearest_parents`.
    """
    goal = target.get("porosity")

    def key(labels):
        factor = 1.0 if goal is None else kozeny_carman_factor(labels[:, 0], goal)
        return blur_key(np.log10(labels[:, 1:] * np.asarray(factor)[..., None]), target)

    return _parents(pool, target, count, key, permute=True)


def lookup(pool: DesignPool, target: dict[str, float], permute: bool = False) -> dict:
    """The baseline: the pool sample whose labels come nearest to the target.

    Nearest in the success measure itself (:func:`label_errors`), so no other pool
    sample would have scored better with its own labels.

    Parameters
    ----------
    pool : DesignPool
    target : dict
    permute : bool
        Also consider the samples under axis permutations (a stronger baseline for
        anisotropic targets).

    Returns
    -------
    dict
        ``baseline_sample`` (sample ID, ``@<axes>`` when permuted), ``baseline_score``
        (max error over the target's properties in tolerance units, from the sample's
        own labels) and ``baseline_success`` (score <= 1).
    """
    best = nearest_parents(pool, target, 1, permute)[0]
    score = best.score
    return {
        "baseline_sample": best.name,
        "baseline_score": score,
        "baseline_success": bool(score <= 1.0),
    }
