"""Learning curves of a dataset-size study: how much labelled data a metric needs.

For each metric and latent size, the error of the completed trials is fitted against
the training-set size N with the usual power law plus floor,

    error(N) = a N^-b + c,        a >= 0, 0 < b <= 3, c >= 0,

where the error is ``1 - value`` for metrics that approach 1 (R^2, Dice, the shares of
decoded structures within fidelity tolerance and of design targets met, realism and
coverage) and the value itself for losses (BCE).
Intervals come from a bootstrap over the seeds: the trials of every dataset size are
resampled with replacement and the curve refitted. The dataset size a target needs
(``n_for_target``, e.g. R^2 >= 0.97) follows from the fit, N = (a / (e* - c))^(1/b),
with the bootstrap's 2.5 and 97.5 percentiles as its interval; infinite when the
fitted floor c lies at or above the target error, and flagged ``extrapolated`` when it
exceeds the largest size run.
"""

import math
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

LATENT = "model.latent_dim"
SIZE = "dataset_size"
MIN_SIZES = 3  # distinct dataset sizes needed to fit three parameters
FAR = 100  # an answer beyond this many times the largest size run is not given as a number
DEFAULT_TARGETS = {"r2": 0.97, "dice": 0.90, "fidelity_success": 0.90}


def metric_columns(trials: pd.DataFrame, prefix: str = "best_val_") -> dict[str, tuple[str, bool]]:
    """Fittable metrics of a trials table: name -> (column, approaches one).

    R^2 of every target (``best_val_r2_*``), reconstruction Dice and BCE, the
    fidelity and design success shares and the realism and coverage of generated
    structures, where present; ``prefix`` picks another set of columns
    (e.g. ``test_`` for test-split metrics of each trial's best checkpoint).
    """
    found = {}
    for column in trials.columns:
        if not column.startswith(prefix):
            continue
        name = column.removeprefix(prefix)
        if name.startswith("r2_"):
            found[name] = (column, True)
        elif name in ("dice", "fidelity_success", "design_success", "realism", "coverage"):
            found[name] = (column, True)
        elif name == "recon":
            found["bce"] = (column, False)
    return found


def _power_law(n, a, b, c):
    return a * np.power(n, -b) + c


def fit_curve(sizes: np.ndarray, errors: np.ndarray) -> tuple[float, float, float]:
    """Least-squares (a, b, c) of ``error = a N^-b + c`` on cell means.

    Parameters
    ----------
    sizes, errors : np.ndarray, shape (K,)
        Distinct dataset sizes and the mean error at each.
    """
    c0 = max(0.0, float(errors.min()) * 0.5)
    b0 = 0.5
    a0 = max(float(errors.max() - c0), 1e-6) * float(sizes.min()) ** b0
    with warnings.catch_warnings():  # exact fits leave no covariance: irrelevant here
        warnings.simplefilter("ignore", OptimizeWarning)
        params, _ = curve_fit(
            _power_law, sizes, errors, p0=(a0, b0, c0),
            bounds=([0.0, 1e-3, 0.0], [np.inf, 3.0, np.inf]), maxfev=20_000,
        )  # fmt: skip
    return tuple(float(p) for p in params)


def size_for(params: tuple[float, float, float], target_error: float) -> float:
    """N at which the fitted error reaches ``target_error`` (inf if never)."""
    a, b, c = params
    if target_error <= c:
        return math.inf
    if a == 0:
        return 0.0
    return (a / (target_error - c)) ** (1.0 / b)


def learning_curves(
    trials: pd.DataFrame,
    targets: dict[str, float] | None = None,
    boot: int = 200,
    seed: int = 0,
    prefix: str = "best_val_",
) -> list[dict]:
    """Fit every metric of a dataset-size study, per latent size.

    Parameters
    ----------
    trials : pd.DataFrame
        One row per trial with ``dataset_size``, ``status`` and ``best_val_*`` columns
        (and ``model.latent_dim`` when it was searched).
    targets : dict, optional
        Metric-name prefix -> target value, e.g. ``{"r2": 0.97}`` applies to every
        ``r2_*`` metric (default :data:`DEFAULT_TARGETS`).
    boot : int
        Bootstrap resamples.
    seed : int
    prefix : str
        Metric columns to fit (see :func:`metric_columns`).

    Returns
    -------
    list of dict
        One per (metric, latent size) with at least :data:`MIN_SIZES` sizes: ``metric``,
        ``latent_dim``, ``sizes``, ``a``, ``b``, ``c`` and ``a_interval``...
        (2.5-97.5 percentiles), ``target`` and ``n_for_target`` with
        ``n_interval`` and ``extrapolated`` (when a target applies).
    """
    targets = DEFAULT_TARGETS if targets is None else targets
    done = trials[trials["status"] == "completed"] if "status" in trials else trials
    latents = done[LATENT] if LATENT in done else pd.Series(np.nan, index=done.index)
    rng = np.random.default_rng(seed)
    results = []
    for name, (column, to_one) in metric_columns(done, prefix).items():
        for latent, part in done.groupby(latents.fillna(-1)):
            values = part[[SIZE, column]].dropna()
            cells = [g[column].to_numpy(float) for _, g in values.groupby(SIZE)]
            sizes = np.array(sorted(values[SIZE].unique()), dtype=float)
            if len(sizes) < MIN_SIZES:
                continue
            error_of = (lambda v: 1.0 - v) if to_one else (lambda v: v)
            try:
                fitted = fit_curve(sizes, np.array([error_of(c).mean() for c in cells]))
            except RuntimeError:  # no least-squares solution: no curve for this metric
                continue
            draws = []
            for _ in range(boot):
                means = [error_of(rng.choice(c, len(c))).mean() for c in cells]
                try:
                    draws.append(fit_curve(sizes, np.array(means)))
                except RuntimeError:  # no convergence on this resample
                    continue
            draws = np.array(draws)
            row = {"metric": name, "latent_dim": None if latent == -1 else int(latent),
                   "sizes": sizes.astype(int).tolist(), "seeds": int(min(map(len, cells))),
                   **dict(zip("abc", fitted, strict=True))}  # fmt: skip
            for j, p in enumerate("abc"):
                row[f"{p}_interval"] = np.percentile(draws[:, j], [2.5, 97.5]).tolist()
            prefix = next((t for t in targets if name == t or name.startswith(f"{t}_")), None)
            if prefix is not None:
                goal = targets[prefix]
                goal_error = 1.0 - goal if to_one else goal
                n = np.array([size_for(tuple(d), goal_error) for d in draws])
                row |= {
                    "target": goal,
                    "n_for_target": size_for(fitted, goal_error),
                    "n_interval": np.percentile(n, [2.5, 97.5]).tolist(),
                }
                row["extrapolated"] = bool(row["n_for_target"] > sizes.max())
            results.append(row)
    return results


def sentence(row: dict) -> str:
    """``R^2 log10 K_xx >= 0.97 needs about 1,400 samples (900-2,300)`` for one fit."""
    label = row["metric"].replace("r2_", "R^2 ").replace("log10_k_", "log10 K_")
    latent = f" at latent size {row['latent_dim']}" if row["latent_dim"] is not None else ""
    n = row["n_for_target"]
    if not math.isfinite(n):
        return (f"{label} >= {row['target']:g}{latent}: not reached by the fitted curve "
                f"(floor c = {row['c']:.3g})")  # fmt: skip
    if n > FAR * max(row["sizes"]):
        return (f"{label} >= {row['target']:g}{latent}: not reached within {FAR}x the "
                f"largest size run (the fitted curve is nearly flat, b = {row['b']:.2g})")
    lo, hi = row["n_interval"]
    hi_text = f"{hi:,.0f}" if math.isfinite(hi) else "never"
    flag = " (extrapolated beyond the largest size run)" if row["extrapolated"] else ""
    return (f"{label} >= {row['target']:g}{latent} needs about {n:,.0f} samples "
            f"({lo:,.0f}-{hi_text}){flag}")  # fmt: skip
