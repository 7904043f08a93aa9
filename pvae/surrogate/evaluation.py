"""Accuracy and uncertainty calibration of surrogate predictions against LBM labels."""

import numpy as np
from scipy.stats import spearmanr

from pvae.core.metrics import r2_score
from pvae.surrogate.ensemble import Prediction

AXES = ("x", "y", "z")


def accuracy(prediction: Prediction, k_true: np.ndarray, bins: int = 4) -> dict:
    """Compare predicted with reference permeability diagonals.

    Parameters
    ----------
    prediction : Prediction
        For N samples.
    k_true : np.ndarray, shape (N, 3, 3)
        Reference K (LBM), lattice units; components where both K_ii > 0 are scored.
    bins : int
        Spread quantile bins of the calibration table.

    Returns
    -------
    dict
        ``r2_log10_k`` {x, y, z}: R^2 of log10 K_ii; ``median_rel_error`` {x, y, z, all}
        of |K_pred - K_true| / K_true on the diagonal; ``mae_log10`` (decades);
        ``percolation_agreement`` (fraction of (sample, axis) with the same zero /
        non-zero status); ``calibration``: ``spearman`` of |log10 error| vs spread
        over (sample, axis) pairs and ``bins`` (per spread quantile bin: spread range,
        count, mean spread, RMS and median absolute log10 error); ``n`` samples.
    """
    true_diag = np.diagonal(k_true, axis1=1, axis2=2)  # (N, 3)
    pred_diag = np.diagonal(prediction.k, axis1=1, axis2=2)
    both = (true_diag > 0) & (pred_diag > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_true = np.where(both, np.log10(true_diag), np.nan)
        log_pred = np.where(both, np.log10(pred_diag), np.nan)
        rel = np.where(both, np.abs(pred_diag - true_diag) / true_diag, np.nan)
    r2 = r2_score(log_true, log_pred)
    error = np.abs(log_pred - log_true)[both]
    spread = prediction.spread[both]
    return {
        "n": int(len(k_true)),
        "r2_log10_k": dict(zip(AXES, map(float, r2), strict=True)),
        "median_rel_error": {
            **{a: float(np.nanmedian(rel[:, i])) for i, a in enumerate(AXES)},
            "all": float(np.nanmedian(rel)),
        },
        "mae_log10": float(error.mean()) if error.size else float("nan"),
        "percolation_agreement": float(((true_diag > 0) == (pred_diag > 0)).mean()),
        "calibration": calibration(error, spread, bins),
    }


def accuracy_by_family(prediction: Prediction, k_true: np.ndarray, families) -> dict:
    """Per-family errors of the permeability diagonals.

    Parameters
    ----------
    prediction : Prediction
        For N samples.
    k_true : np.ndarray, shape (N, 3, 3)
        Reference K (LBM), lattice units.
    families : array-like of str, shape (N,)
        Family of each sample.

    Returns
    -------
    dict
        Per family: ``n`` samples, ``median_rel_error`` of K_ii and
        ``median_log10_error`` (decades) over the components where both K_ii > 0.
    """
    true_diag = np.diagonal(k_true, axis1=1, axis2=2)  # (N, 3)
    pred_diag = np.diagonal(prediction.k, axis1=1, axis2=2)
    families = np.asarray(families)
    result = {}
    for family in sorted(set(families.tolist())):
        rows = families == family
        t, p = true_diag[rows], pred_diag[rows]
        both = (t > 0) & (p > 0)
        result[family] = {
            "n": int(rows.sum()),
            "median_rel_error": float(np.median(np.abs(p[both] - t[both]) / t[both])),
            "median_log10_error": float(np.median(np.abs(np.log10(p[both] / t[both])))),
        }
    return result


def calibration(error: np.ndarray, spread: np.ndarray, bins: int = 4) -> dict:
    """Absolute log10 error versus ensemble spread, both (P,) over scored components."""
    if error.size < 2:
        return {"spearman": float("nan"), "bins": []}
    rho = spearmanr(spread, error).statistic if np.ptp(spread) > 0 else float("nan")
    edges = np.quantile(spread, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, spread, side="right") - 1, 0, bins - 1)
    table = []
    for b in range(bins):
        e, s = error[which == b], spread[which == b]
        if e.size:
            table.append({
                "spread_lo": float(edges[b]), "spread_hi": float(edges[b + 1]),
                "count": int(e.size), "mean_spread": float(s.mean()),
                "rms_error": float(np.sqrt((e**2).mean())), "median_error": float(np.median(e)),
            })  # fmt: skip
    return {"spearman": float(rho), "bins": table}
