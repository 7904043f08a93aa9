"""The samples inverse design may use: starts, novelty references and the lookup baseline.

Inverse design must not see the samples it is judged on. The pool is therefore the
model's *training split* when the dataset given is the one the model was trained on
(same fingerprint), and every labelled sample of any other dataset the user passes.
Latent starts are encoded pool samples, novelty is measured against the pool, and the
baseline a design must beat is the pool sample whose labels are nearest to the target
("lookup"), scored with its own labels exactly as a design is scored by LBM.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pvae.design_targets import K_TARGETS, score_designs, target_vector
from pvae.errors import PvaeError
from pvae.loading import LoadedModel
from pvae.store.reader import VoxelStore
from pvae.targets import target_values


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
    """The pool of :mod:`this module <pvae.design_pool>` for a model and a dataset."""
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


def nearest_rows(loaded: LoadedModel, pool: DesignPool, goal: np.ndarray, count: int) -> np.ndarray:
    """Pool rows whose labels are nearest to ``goal``, nearest first.

    Parameters
    ----------
    goal : np.ndarray, shape (T,)
        Target in the model's raw target units (log10 K), NaN = not set.
    count : int

    Returns
    -------
    np.ndarray of int, shape (min(count, P),)
        Dataset rows; distance is Euclidean over the set targets, each divided by
        the model's target standard deviation.
    """
    given = np.flatnonzero(np.isfinite(goal))
    values = target_values(pool.store, loaded.targets)[pool.rows][:, given]
    std = np.asarray(loaded.normalizer.std)[given]
    distance = (((values - goal[given]) / std) ** 2).sum(axis=1)
    distance[~np.isfinite(values).all(axis=1)] = np.inf
    return pool.rows[np.argsort(distance, kind="stable")[:count]]


def lookup(loaded: LoadedModel, pool: DesignPool, target: dict[str, float]) -> dict:
    """The baseline: the pool sample whose labels are nearest to the target.

    Returns
    -------
    dict
        ``baseline_sample`` (sample ID), ``baseline_score`` (max error over the target's
        properties in tolerance units, from the sample's own labels) and
        ``baseline_success`` (score <= 1).
    """
    row = pool.store.manifest.iloc[
        nearest_rows(loaded, pool, target_vector(target, loaded.targets), 1)[0]
    ]
    labels = {"verified_porosity": row["porosity"]}
    for k in K_TARGETS:
        labels[f"verified_log10_{k}"] = np.log10(row[k]) if row[k] > 0 else np.nan
    scored = score_designs(pd.DataFrame([labels]), target).iloc[0]
    return {
        "baseline_sample": row["sample_id"],
        "baseline_score": float(scored["score"]),
        "baseline_success": bool(scored["success"]),
    }
