"""Writing surrogate labels into a dataset, routing uncertain samples to LBM.

The surrogate part runs in-process (milliseconds per sample); samples whose ensemble
spread is above a threshold are left unlabelled here so that the LBM labeller
(:func:`tune.surrogate_labelling.label_with_surrogate` runs it as Ray tasks) picks
them up as its pending rows. Provenance per sample lives in the manifest:
``label_source`` is ``surrogate`` or ``lbm``; a surrogate row's ``label_info`` is JSON
with ``method``, ``model`` (the ensemble fingerprint), ``members``, ``spread_log10``
[x, y, z] (decades), ``percolating`` and ``threshold``.
"""

import json
from pathlib import Path

import numpy as np

from pvae.errors import PvaeError
from pvae.store.labelling import pending_indices, significant
from pvae.store.manifest import K_COLUMNS
from pvae.store.reader import open_dataset
from pvae.store.writer import rewrite_manifest
from pvae.surrogate.ensemble import SurrogateEnsemble


def write_surrogate_labels(
    root: str | Path,
    ensemble: SurrogateEnsemble,
    fallback_above: float | None = None,
    relabel: bool = False,
    batch_size: int = 64,
    progress: bool | None = None,
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

    Returns
    -------
    dict
        ``surrogate`` (rows labelled now), ``fallback`` (indices left for LBM, array),
        ``already_labelled``, ``max_spread`` (largest spread seen), ``fingerprint``.
    """
    if fallback_above is not None and not fallback_above >= 0:
        raise PvaeError(f"--fallback-lbm-above {fallback_above}: need a spread >= 0 (decades)")
    store = open_dataset(root)
    ensemble.check_shape(store.shape, store.root)
    todo = pending_indices(root, relabel)
    prediction = ensemble.predict_store(store, todo, batch_size, progress)
    spread = prediction.max_spread
    routed = spread > fallback_above if fallback_above is not None else np.zeros(len(todo), bool)
    frame = store.manifest.copy()
    keep, back = todo[~routed], todo[routed]
    frame.loc[keep, list(K_COLUMNS)] = significant(prediction.k[~routed].reshape(-1, 9))
    frame.loc[keep, "label_source"] = "surrogate"
    frame.loc[keep, "label_info"] = [
        json.dumps({"method": "surrogate", "model": ensemble.fingerprint,
                    "members": ensemble.n_members, "spread_log10": s.tolist(),
                    "percolating": p.tolist(), "threshold": fallback_above}, sort_keys=True)
        for s, p in zip(prediction.spread[~routed], prediction.percolating[~routed], strict=True)
    ]  # fmt: skip
    frame.loc[back, list(K_COLUMNS)] = np.nan  # for LBM (relabel of labelled rows)
    frame.loc[back, "label_source"] = ""
    frame.loc[back, "label_info"] = "{}"
    fingerprint = rewrite_manifest(root, frame)
    return {
        "surrogate": int(len(keep)),
        "fallback": back,
        "already_labelled": int(len(store) - len(todo)),
        "max_spread": float(spread.max()) if len(spread) else 0.0,
        "fingerprint": fingerprint,
    }
