"""Study figures (matplotlib; each saved as PNG and PDF).

Every function takes a :class:`analysis.study.Study` and an output stem (path without
suffix) and returns the PNG path, or None when the study lacks what the figure needs
(e.g. a parameter that was not searched).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.learning_curve import LATENT, SIZE, metric_columns  # noqa: E402
from analysis.study import METRIC, Study  # noqa: E402

STATUS_STYLE = {
    "completed": {"color": "tab:blue", "marker": "o", "label": "completed (full budget)"},
    "stopped_early": {"color": "tab:orange", "marker": "x", "label": "stopped early by ASHA"},
    "diverged": {"color": "tab:red", "marker": "v", "label": "diverged"},
    "error": {"color": "black", "marker": "s", "label": "error"},
    "unfinished": {"color": "grey", "marker": ".", "label": "unfinished"},
}


def save(fig, stem: Path) -> Path:
    """Save as ``stem.png`` and ``stem.pdf``; returns the PNG path."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(stem.with_suffix(".png"), dpi=150, bbox_inches="tight")
    fig.savefig(stem.with_suffix(".pdf"), bbox_inches="tight", metadata={"CreationDate": None})
    plt.close(fig)
    return stem.with_suffix(".png")


def asha_rungs(study: Study) -> list[int]:
    """Epochs at which ASHA compared trials (grace_period * rf^k <= max_t)."""
    spec = study.record.get("study", {})
    if spec.get("scheduler", "asha") != "asha":
        return []
    grace = int(spec.get("grace_period", 1))
    factor = int(spec.get("reduction_factor", 2))
    budget = int(spec.get("max_t", study.history["epoch"].max() if len(study.history) else 1))
    rungs, rung = [], grace
    while rung < budget and factor > 1:
        rungs.append(rung)
        rung *= factor
    return rungs


def learning_curves(study: Study, stem: Path, metric: str = METRIC) -> Path | None:
    """Validation metric per epoch of every trial; ASHA rungs and early stops marked."""
    if metric not in study.history:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    status = study.trials.set_index("trial_id")["status"]
    seen = set()
    for trial_id, curve in study.history.groupby("trial_id"):
        style = STATUS_STYLE.get(status.get(trial_id, "unfinished"), STATUS_STYLE["unfinished"])
        ax.plot(curve["epoch"], curve[metric], color=style["color"], alpha=0.6, lw=1)
        label = style["label"] if style["label"] not in seen else None
        seen.add(style["label"])
        last = curve.iloc[-1]
        ax.plot(last["epoch"], last[metric], style["marker"], color=style["color"], label=label)
    for rung in asha_rungs(study):
        ax.axvline(rung, color="grey", ls=":", lw=1)
    ax.set(
        xlabel="epoch", ylabel=metric, title=f"{study.name}: learning curves (dotted: ASHA rungs)"
    )
    ax.legend(fontsize=8)
    return save(fig, stem)


def metric_vs(study: Study, column: str, stem: Path, metric: str = f"best_{METRIC}") -> Path | None:
    """Best metric of each trial against one parameter; median of completed trials per value."""
    trials = study.trials
    if column not in trials or metric not in trials or trials[column].nunique() < 1:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for status, group in trials.groupby("status"):
        style = STATUS_STYLE.get(status, STATUS_STYLE["unfinished"])
        ax.plot(
            group[column],
            group[metric],
            style["marker"],
            color=style["color"],
            label=style["label"],
            alpha=0.8,
        )
    done = trials[trials["status"] == "completed"]
    if len(done):
        medians = done.groupby(column)[metric].median()
        ax.plot(
            medians.index,
            medians.to_numpy(),
            "-",
            color="tab:blue",
            lw=1.5,
            label="median (completed)",
        )
    numeric = pd.api.types.is_numeric_dtype(trials[column])
    if numeric and trials[column].min() > 0 and trials[column].max() / trials[column].min() > 20:
        ax.set_xscale("log")
    ax.set(xlabel=column, ylabel=metric, title=f"{metric} vs. {column}")
    ax.legend(fontsize=7)
    return save(fig, stem)


def parallel_coordinates(study: Study, stem: Path, metric: str = f"best_{METRIC}") -> Path | None:
    """Each trial as a line through its (normalised) parameters, coloured by the metric."""
    columns = [c for c in study.params if pd.api.types.is_numeric_dtype(study.trials[c])]
    trials = (
        study.trials.dropna(subset=[metric]) if metric in study.trials else study.trials.iloc[:0]
    )
    if not columns or trials.empty:
        return None
    values = trials[columns + [metric]].astype(float)
    for c in columns:
        if values[c].min() > 0 and values[c].max() / values[c].min() > 20:
            values[c] = np.log10(values[c])
    span = (values.max() - values.min()).replace(0, 1)
    scaled = (values - values.min()) / span
    colours = plt.cm.viridis_r(
        (scaled[metric] - scaled[metric].min()) / max(scaled[metric].max(), 1e-12)
    )
    fig, ax = plt.subplots(figsize=(1.6 * (len(columns) + 1) + 1, 3.8))
    for row, colour in zip(scaled.itertuples(index=False), colours, strict=True):
        ax.plot(range(len(columns) + 1), row, color=colour, alpha=0.8)
    ax.set_xticks(range(len(columns) + 1), columns + [metric], rotation=20, fontsize=8)
    ax.set(yticks=[], title="parallel coordinates (yellow = better; log scale where wide)")
    return save(fig, stem)


def importance_plot(importances: dict, stem: Path) -> Path | None:
    """Bar chart of hyperparameter importances."""
    if not importances:
        return None
    fig, ax = plt.subplots(figsize=(5, 0.4 * len(importances) + 1.2))
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set(xlabel="importance (Optuna PED-ANOVA)", title="hyperparameter importance")
    return save(fig, stem)


PARETO_PAIRS = {
    # name: (x column, y column, x label, y label, larger is better)
    "recon_vs_property": ("best_val_recon", "best_val_reg", "reconstruction BCE (val, nats/voxel)",
                          "property MSE (val, standardized)", False),
    "r2_vs_fidelity": ("best_val_r2_mean", "best_val_fidelity_success", "property R^2 (val, mean)",
                       "fidelity: decoded structures within tolerance (val)", True),
    "r2_vs_design": ("best_val_r2_mean", "best_val_design_success", "property R^2 (val, mean)",
                     "design: validation targets met by the critic", True),
    "r2_vs_realism": ("best_val_r2_mean", "best_val_realism", "property R^2 (val, mean)",
                      "realism: generated structures like the data", True),
}  # fmt: skip


def pareto_front(
    study: Study, stem: Path, pair: str = "recon_vs_property", chosen: str | None = None
) -> Path | None:
    """Two metrics per trial with their non-dominated front (see :data:`PARETO_PAIRS`).

    ``recon_vs_property``: reconstruction vs. property error (both lower is better);
    ``r2_vs_fidelity``: property R^2 vs. the share of decoded validation structures that
    carry their source's permeability (both higher is better; needs a study trained with
    ``train.fidelity_every``); ``r2_vs_design``: property R^2 vs. the share of validation
    targets the critic expects the model's designs to meet (``train.design_every``,
    :mod:`pvae.design.probe`); ``r2_vs_realism``: property R^2 vs. the share of
    generated structures as close to the data as the data lie to each other
    (``train.generation_every``, :mod:`pvae.vae.generation`). ``chosen``: the production
    model's trial ID, drawn as a star where the figure shows it. None when the study lacks
    the columns.
    """
    x, y, x_label, y_label, larger = PARETO_PAIRS[pair]
    trials = study.trials.dropna(subset=[x, y]) if {x, y} <= set(study.trials) else None
    if trials is None or trials.empty:
        return None
    points = trials[[x, y]].to_numpy(float)
    cost = -points if larger else points
    front = np.array(
        [not np.any(np.all(cost <= p, axis=1) & np.any(cost < p, axis=1)) for p in cost]
    )
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(points[:, 0], points[:, 1], c="lightgrey", label="trials")
    order = np.argsort(points[front, 0])
    ax.plot(
        points[front][order, 0],
        points[front][order, 1],
        "o-",
        color="tab:red",
        label="Pareto front",
    )
    for (px, py), tid in zip(points[front], trials["trial_id"][front], strict=True):
        ax.annotate(str(tid)[-5:], (px, py), fontsize=6)
    picked = (trials["trial_id"] == chosen).to_numpy()
    if picked.any():
        ax.scatter(points[picked, 0], points[picked, 1], marker="*", s=160, c="black", zorder=3,
                   label=f"chosen: {chosen}")  # fmt: skip
    ax.set(xlabel=x_label, ylabel=y_label)
    ax.margins(x=0.1)  # room for the labels of the outermost points
    ax.legend(fontsize=8)
    return save(fig, stem)


def learning_curve_fits(
    trials: pd.DataFrame, fits: list[dict], stem: Path, prefix: str = "best_val_"
) -> Path | None:
    """Error against dataset size with the fitted ``a N^-b + c``, one panel per metric.

    Parameters
    ----------
    trials : pd.DataFrame
        The study's trials (``Study.trials``), with the metric columns fitted.
    fits : list of dict
        :func:`analysis.learning_curve.learning_curves` of those trials.
    prefix : str
        The metric columns the fits were made on.
    """
    if not fits:
        return None
    columns = metric_columns(trials, prefix)
    metrics = list(dict.fromkeys(f["metric"] for f in fits))
    done = trials[trials["status"] == "completed"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics, strict=True):
        column, to_one = columns[metric]
        for k, fit in enumerate(f for f in fits if f["metric"] == metric):
            part = done if fit["latent_dim"] is None else done[done[LATENT] == fit["latent_dim"]]
            error = 1.0 - part[column] if to_one else part[column]
            color = colors[k % len(colors)]
            label = "all" if fit["latent_dim"] is None else f"latent {fit['latent_dim']}"
            ax.plot(part[SIZE], error, "o", color=color, alpha=0.6, label=label)
            n = np.geomspace(min(fit["sizes"]), 4 * max(fit["sizes"]), 100)
            ax.plot(n, fit["a"] * n ** -fit["b"] + fit["c"], "-", color=color, lw=1.2)
            if "target" in fit:
                goal = 1.0 - fit["target"] if to_one else fit["target"]
                ax.axhline(goal, color="grey", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="dataset size N",
               ylabel=f"1 - {metric}" if to_one else metric, title=metric)  # fmt: skip
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=7)
    fig.suptitle("error(N) = a N^-b + c (dotted: target; curves run to 4x the largest N)", y=1.04)
    fig.tight_layout()
    return save(fig, stem)
