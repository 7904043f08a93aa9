"""Writing surrogate labels into a dataset, routing doubtful samples to LBM.

The surrogate part runs in-process (milliseconds per sample). Two tests route a
sample to LBM instead: an ensemble spread above a threshold (the members disagree),
and a distance outside the surrogate's applicability domain
(:mod:`pvae.surrogate.domain`: the image is unlike the training images, where the
members can agree and be wrong together). Routed samples are left unlabelled here so
that the LBM labeller (:func:`tune.surrogate_labelling.label_with_surrogate` runs it
as Ray tasks) picks them up as its pending rows. Provenance per sample lives in the
manifest: ``label_source`` is ``surrogate`` or ``lbm``; a surrogate row's
``label_info`` is JSON with ``method``, ``model`` (the ensemble fingerprint),
``members``, ``spread_log10`` [x, y, z] (decades), ``percolating``, ``threshold``
(spread), ``domain_distance`` and ``domain_threshold`` (null without a domain).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pvae.core.errors import PvaeError
from pvae.data.store.labelling import pending_indices, significant
from pvae.data.store.manifest import K_COLUMNS
from pvae.data.store.reader import open_dataset
from pvae.data.store.writer import rewrite_manifest
from pvae.surrogate.ensemble import SurrogateEnsemble

FALLBACK_SPREAD = 0.1  # decades: the top of the spread the shipped surrogate shows on its test data
CHECK_FRACTION = 0.02  # share of surrogate labels a large build also solves by LBM


def write_surrogate_labels(
    root: str | Path,
    ensemble: SurrogateEnsemble,
    fallback_above: float | None = None,
    relabel: bool = False,
    batch_size: int = 64,
    progress: bool | None = None,
    domain_check: bool = True,
) -> dict:
    """Label the pending samples of a dataset with the surrogate (atomic manifest write).

    Parameters
    ----------
    root : str or Path
        Dataset directory; its image shape must be the surrogate's training shape.
    ensemble : SurrogateEnsemble
    fallback_above : float, optional
        Spread threshold in decades of log10 K (largest over the axes): samples above
        it get no surrogate label and are left (or made) unlabelled for LBM.
    relabel : bool
        Also replace existing labels (otherwise only unlabelled rows are touched).
    batch_size : int
        Images per forward pass.
    progress : bool, optional
    domain_check : bool
        Route samples outside the ensemble's applicability domain to LBM too (when
        the bundle has a domain; see :attr:`SurrogateEnsemble.domain`).

    Returns
    -------
    dict
        ``surrogate`` (rows labelled now), ``fallback`` (indices left for LBM, array),
        ``uncertain`` and ``outside_domain`` (how many of them each test routed; a
        sample can fail both), ``already_labelled``, ``max_spread`` (largest spread
        seen), ``domain_checked`` (bool), ``fingerprint``.
    """
    if fallback_above is not None and not fallback_above >= 0:
        raise PvaeError(f"--fallback-lbm-above {fallback_above}: need a spread >= 0 (decades)")
    store = open_dataset(root)
    ensemble.check_shape(store.shape, store.root)
    todo = pending_indices(root, relabel)
    prediction = ensemble.predict_store(store, todo, batch_size, progress)
    spread = prediction.max_spread
    uncertain = spread > fallback_above if fallback_above is not None else np.zeros(len(todo), bool)
    domain = ensemble.domain if domain_check else None
    distance = np.full(len(todo), np.nan)
    if domain is not None:
        distance = domain.store_distance(store, todo)
    outside = distance > domain.threshold if domain is not None else np.zeros(len(todo), bool)
    routed = uncertain | outside
    limit = domain.threshold if domain is not None else None
    frame = store.manifest.copy()
    keep, back = todo[~routed], todo[routed]
    frame.loc[keep, list(K_COLUMNS)] = significant(prediction.k[~routed].reshape(-1, 9))
    frame.loc[keep, "label_source"] = "surrogate"
    frame.loc[keep, "label_info"] = [
        json.dumps({"method": "surrogate", "model": ensemble.fingerprint,
                    "members": ensemble.n_members, "spread_log10": s.tolist(),
                    "percolating": p.tolist(), "threshold": fallback_above,
                    "domain_distance": None if np.isnan(d) else round(float(d), 4),
                    "domain_threshold": limit}, sort_keys=True)
        for s, p, d in zip(prediction.spread[~routed], prediction.percolating[~routed],
                           distance[~routed], strict=True)
    ]  # fmt: skip
    frame.loc[back, list(K_COLUMNS)] = np.nan  # for LBM (relabel of labelled rows)
    frame.loc[back, "label_source"] = ""
    frame.loc[back, "label_info"] = "{}"
    fingerprint = rewrite_manifest(root, frame)
    return {
        "surrogate": int(len(keep)),
        "fallback": back,
        "uncertain": int(uncertain.sum()),
        "outside_domain": int(outside.sum()),
        "domain_checked": domain is not None,
        "already_labelled": int(len(store) - len(todo)),
        "max_spread": float(spread.max()) if len(spread) else 0.0,
        "fingerprint": fingerprint,
    }


def check_rows(root: str | Path, fraction: float, seed: int) -> np.ndarray:
    """Rows of the surrogate-labelled samples drawn for the LBM check (sorted; at
    least one when any), the same on every rerun."""
    sources = open_dataset(root).manifest["label_source"].to_numpy()
    candidates = np.flatnonzero(sources == "surrogate")
    if not len(candidates) or fraction == 0:
        return np.zeros(0, dtype=np.int64)
    count = max(1, round(fraction * len(candidates)))
    rng = np.random.default_rng([seed, 0xC4EC])
    return np.sort(rng.choice(candidates, size=count, replace=False))


def check_errors(root: str | Path, lbm: pd.DataFrame) -> pd.DataFrame:
    """Surrogate label against LBM, per checked sample and axis.

    Returns
    -------
    pd.DataFrame
        ``index``, ``sample_id``, ``family``, ``surrogate_k_ii`` and ``lbm_k_ii``
        (lattice units) and ``error_ii`` = log10 surrogate - log10 LBM (decades; NaN
        where either is 0, i.e. no flow) for ii in xx, yy, zz.
    """
    manifest = open_dataset(root).manifest
    lbm = lbm.drop_duplicates("index").sort_values("index")
    index = lbm["index"].to_numpy(dtype=np.int64)
    frame = pd.DataFrame({"index": index, "sample_id": manifest["sample_id"].to_numpy()[index],
                          "family": manifest["family"].to_numpy()[index]})  # fmt: skip
    for axis in ("xx", "yy", "zz"):
        ours = manifest[f"k_{axis}"].to_numpy(dtype=float)[index]
        truth = lbm[f"k_{axis}"].to_numpy(dtype=float)
        frame[f"surrogate_k_{axis}"], frame[f"lbm_k_{axis}"] = ours, truth
        with np.errstate(divide="ignore", invalid="ignore"):
            both = (ours > 0) & (truth > 0)
            frame[f"error_{axis}"] = np.where(both, np.log10(ours) - np.log10(truth), np.nan)
    return frame


def error_summary(errors: pd.DataFrame) -> dict:
    """Median, 90th percentile and largest |error| (decades) over checked components,
    and the share of components where surrogate and LBM disagree on flow (K = 0)."""
    columns = ["error_xx", "error_yy", "error_zz"]
    values = np.abs(errors[columns].to_numpy(dtype=float)).ravel()
    flows_s = errors[[f"surrogate_k_{a}" for a in ("xx", "yy", "zz")]].to_numpy() > 0
    flows_l = errors[[f"lbm_k_{a}" for a in ("xx", "yy", "zz")]].to_numpy() > 0
    finite = values[np.isfinite(values)]
    stat = (lambda f: round(float(f(finite)), 4)) if len(finite) else (lambda f: None)
    return {
        "samples": int(len(errors)),
        "median_abs_log10_error": stat(np.median),
        "p90_abs_log10_error": stat(lambda v: np.quantile(v, 0.9)),
        "max_abs_log10_error": stat(np.max),
        "flow_disagreement": float((flows_s != flows_l).mean()) if len(errors) else None,
    }
